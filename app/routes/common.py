"""What every route module uses: the services, the authenticated user, JSON-or-SSE replies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar, cast

from quart import Response, current_app, g, request
from quart.typing import ResponseReturnValue
from quart_schema import security_scheme

from app.errors import Forbidden, InvalidRequest
from app.openapi import BEARER, errors
from app.services.auth import Access
from app.services.container import Services
from app.services.runs import Run
from app.sse import event_stream, source_stream, wants_stream
from app.views import parse_id
from storage.records import User

P = ParamSpec("P")
R = TypeVar("R")


def services() -> Services:
    return cast(Services, current_app.extensions["services"])


def current_user() -> User:
    return cast(User, g.user)


def current_access() -> Access:
    """The request's token and user as `authenticated_cached` resolved them."""
    return cast(Access, g.access)


def authenticated(handler: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Resolve the bearer token to a user (401 otherwise) before anything else runs.

    Documents the bearer requirement, 401, and 503 (the database is unavailable)."""

    @wraps(handler)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        user, token_hash = await services().auth.authenticate(request.headers.get("Authorization"))
        g.user = user
        g.token_hash = token_hash
        return await handler(*args, **kwargs)

    return errors(401, 503)(security_scheme([{BEARER: []}])(wrapper))


def authenticated_cached(handler: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """`authenticated` for the chat hot path: a token this process resolved before comes from
    its cache without a database round trip, and the handler's service confirms it in its first
    transaction (`Access.confirm`), before it changes anything. Documented as `authenticated`.

    The one difference: a token revoked by another process since it was cached is refused by
    that transaction (401), after the checks that need no database (rate limit, validation)."""

    @wraps(handler)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        access = await services().auth.access(request.headers.get("Authorization"))
        g.access = access
        g.user = access.user
        g.token_hash = access.token_hash
        return await handler(*args, **kwargs)

    return errors(401, 503)(security_scheme([{BEARER: []}])(wrapper))


def rate_limited(handler: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """429 `rate_limited` past the user's `FASTNPC_RATE_LIMIT_PER_MINUTE` (under `authenticated`;
    for routes that call the LLM)."""

    @wraps(handler)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        await services().rate_limit.acquire(current_user().id)
        return await handler(*args, **kwargs)

    return wrapper


def client_address() -> str:
    """The peer address of the connection (no header, e.g. a proxy's, is trusted)."""
    client = request.scope.get("client")
    return str(client[0]) if client else "unknown"


def admin_only(handler: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """403 for an authenticated non-admin (use under `authenticated`)."""

    @wraps(handler)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if not current_user().is_admin:
            raise Forbidden("administrators only")
        return await handler(*args, **kwargs)

    return errors(403)(wrapper)


def quota_checked(handler: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """429 `quota_exceeded` before anything runs when the user's monthly token quota is used
    up (use under `authenticated` on every route that calls the LLM)."""

    @wraps(handler)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        await services().usage.check_quota(current_user().id)
        return await handler(*args, **kwargs)

    return errors(429)(wrapper)


async def run_response(
    run: Run, shape: Callable[[Any], Any], *, status: int = 200
) -> ResponseReturnValue:
    """SSE relay of the run's events when asked for, else wait and answer with JSON."""
    if wants_stream():
        return event_stream(run.events, ping_interval=services().settings.sse_ping_interval)
    result = await run.wait()
    return shape(result), status


def no_content() -> Response:
    """204 with no body and no Content-Type."""
    response = Response(b"", status=204)
    del response.headers["Content-Type"]
    return response


def before_id(raw: str | None) -> int | None:
    """The `before` query parameter of a history page (400 when it names no message)."""
    if raw is None:
        return None
    before = parse_id(raw)
    if before is None:
        raise InvalidRequest("`before` is not a message id")
    return before


def last_event_id() -> int | None:
    """The `Last-Event-ID` header of a resuming client (400 when it is not one of our ids)."""
    raw = request.headers.get("Last-Event-ID")
    if raw is None or not raw.strip():
        return None
    raw = raw.strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise InvalidRequest("`Last-Event-ID` is not an event id of this service")
    return int(raw)


async def follow_response(conversation_id: int | None) -> ResponseReturnValue:
    """The SSE stream following the conversation's generation from wherever it runs, resuming
    after `Last-Event-ID`; 204 when there is nothing to follow."""
    resume = last_event_id()
    svc = services()
    source = None
    if conversation_id is not None:
        source = await svc.following.source(conversation_id, resume)
    if source is None:
        return no_content()
    return source_stream(source, ping_interval=svc.settings.sse_ping_interval)
