"""The shared httpx client for LLM calls."""

from __future__ import annotations

import httpcore
import httpx

from llm.settings import LLMSettings

# The admin API may resize the limiter up to this many slots without a restart.
MAX_RESIZABLE_CONCURRENCY = 1000


class _LinearConnectionPool(httpcore.AsyncConnectionPool):
    """httpcore's pool with its bookkeeping made linear in the number of connections.

    httpcore 1.0's ``_assign_requests_to_connections`` evaluates a list over all
    connections for every idle one on every request start and end (quadratic per
    call), which dominates CPU with hundreds of pooled connections. This is the same
    policy (bug-compatible: it compares the *total* connection count with
    ``max_keepalive_connections``) without the repeated scans.
    """

    def _assign_requests_to_connections(self) -> list[httpcore.AsyncConnectionInterface]:
        closing: list[httpcore.AsyncConnectionInterface] = []
        connections = self._connections
        for connection in list(connections):
            if connection.is_closed():
                connections.remove(connection)
            elif connection.has_expired() or (
                connection.is_idle() and len(connections) > self._max_keepalive_connections
            ):
                connections.remove(connection)
                closing.append(connection)

        for pool_request in [r for r in self._requests if r.is_queued()]:
            origin = pool_request.request.url.origin
            available = next(
                (c for c in connections if c.can_handle_request(origin) and c.is_available()),
                None,
            )
            if available is not None:
                pool_request.assign_to_connection(available)
                continue
            if len(connections) >= self._max_connections:
                idle = next((c for c in connections if c.is_idle()), None)
                if idle is None:
                    continue  # stays queued until a connection frees up
                connections.remove(idle)
                closing.append(idle)
            connection = self.create_connection(origin)
            connections.append(connection)
            pool_request.assign_to_connection(connection)
        return closing


def make_http_client(settings: LLMSettings) -> httpx.AsyncClient:
    """An HTTP/1.1 ``httpx.AsyncClient`` sized for the LLM limiter.

    No httpx timeouts: a read timeout restarts on every chunk (keep-alives defeat it),
    so the client's own cancel scopes bound every call. The pool admits at least as
    many connections as the limiter can ever grant, so callers never queue in httpx.
    """
    connections = max(settings.max_concurrency, MAX_RESIZABLE_CONCURRENCY)
    limits = httpx.Limits(
        max_connections=connections,
        max_keepalive_connections=settings.max_concurrency,
        keepalive_expiry=30.0,
    )
    transport = httpx.AsyncHTTPTransport(http1=True, http2=False, limits=limits)
    pool = getattr(transport, "_pool", None)
    if type(pool) is httpcore.AsyncConnectionPool:
        pool.__class__ = _LinearConnectionPool
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(None),
        limits=limits,
        follow_redirects=False,
    )
