"""One-to-one chat with a character."""

from __future__ import annotations

from quart import Blueprint
from quart.typing import ResponseReturnValue
from quart_schema import document_response, validate_querystring, validate_request

from app.openapi import LLM_ERRORS, errors, follows, no_content_response, streams
from app.routes.common import (
    authenticated,
    authenticated_cached,
    before_id,
    current_access,
    current_user,
    follow_response,
    no_content,
    quota_checked,
    rate_limited,
    run_response,
    services,
)
from app.schemas import (
    ChatIn,
    ChatOut,
    HistoryQuery,
    MessagePage,
    QueuedOut,
    ReplyOut,
    StoppedOut,
)
from app.views import page_view, parse_id

bp = Blueprint("chat", __name__, url_prefix="/api/characters/<character_id>/chat")


@bp.post("")
@authenticated_cached
@rate_limited
@validate_request(ChatIn)
@document_response(ChatOut)
@errors(400, 404, 413, 429, *LLM_ERRORS)
@streams
async def send(character_id: str, data: ChatIn) -> ResponseReturnValue:
    """[stream] Send a message; `user_message`, `delta`…, `reply`, `done`."""
    # the token is confirmed and the quota checked in the service's first transaction
    run = await services().chat.send(current_access(), parse_id(character_id), data.content)
    return await run_response(run, dict)


@bp.post("/stop")
@authenticated
@document_response(StoppedOut)
@errors(404)
async def stop(character_id: str) -> ResponseReturnValue:
    """Cancel the running generation; its partial text is stored as `interrupted`."""
    stopped = await services().chat.stop(current_user().id, parse_id(character_id))
    return {"stopped": stopped}


@bp.get("/stream")
@authenticated
@follows
@errors(400, 404)
async def follow(character_id: str) -> ResponseReturnValue:
    """Follow the running reply from any server process: its events so far (or those after
    `Last-Event-ID`), then live ones, to its terminal event; 204 when nothing runs."""
    conversation_id = await services().chat.conversation_id(
        current_user().id, parse_id(character_id)
    )
    return await follow_response(conversation_id)


@bp.post("/regenerate")
@authenticated
@rate_limited
@document_response(ReplyOut)
@errors(404, *LLM_ERRORS)
@streams
@quota_checked
async def regenerate(character_id: str) -> ResponseReturnValue:
    """[stream] Replace the last assistant reply with a new one."""
    run = await services().chat.regenerate(current_user().id, parse_id(character_id))
    return await run_response(
        run, lambda result: {"reply": result["reply"], "lore": result["lore"]}
    )


@bp.get("/messages")
@authenticated
@validate_querystring(HistoryQuery)
@document_response(MessagePage)
@errors(400, 404)
async def history(character_id: str, query_args: HistoryQuery) -> ResponseReturnValue:
    """Paginated history, newest last within a page; `before` is exclusive."""
    page = await services().chat.history(
        current_user().id,
        parse_id(character_id),
        limit=query_args.limit,
        before=before_id(query_args.before),
    )
    return page_view(page)


@bp.delete("")
@authenticated
@no_content_response
@errors(404, 409)
async def clear(character_id: str) -> ResponseReturnValue:
    """Delete the conversation's messages and memories."""
    await services().chat.clear(current_user().id, parse_id(character_id))
    return no_content()


@bp.post("/compress")
@authenticated
@rate_limited
@document_response(QueuedOut, 202)
@errors(404)
async def compress(character_id: str) -> ResponseReturnValue:
    """Ask for memory compression now."""
    queued = await services().chat.compress(current_user().id, parse_id(character_id))
    return {"queued": queued}, 202
