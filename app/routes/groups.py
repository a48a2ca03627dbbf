"""Group chat: groups of the caller's characters, their turns, history and memories."""

from __future__ import annotations

from typing import Any

from quart import Blueprint
from quart.typing import ResponseReturnValue
from quart_schema import document_response, validate_querystring, validate_request

from app.routes.common import (
    authenticated,
    before_id,
    current_user,
    no_content,
    rate_limited,
    run_response,
    services,
)
from app.schemas import (
    ChatIn,
    GroupIn,
    GroupList,
    GroupMemoriesQuery,
    GroupOut,
    GroupPatch,
    GroupTurnOut,
    HistoryQuery,
    MemoryList,
    MessagePage,
    StoppedOut,
)
from app.views import group_view, memory_view, page_view, parse_id

bp = Blueprint("groups", __name__, url_prefix="/api/groups")


@bp.post("")
@authenticated
@validate_request(GroupIn)
@document_response(GroupOut, 201)
async def create(data: GroupIn) -> ResponseReturnValue:
    """Create a group of 2–8 of your characters."""
    group = await services().groups.create(
        current_user().id,
        data.name,
        data.character_ids,
        strategy=data.strategy,
        max_speakers=data.max_speakers,
    )
    return group_view(group), 201


@bp.get("")
@authenticated
@document_response(GroupList)
async def list_groups() -> ResponseReturnValue:
    """The caller's groups."""
    items = await services().groups.list_groups(current_user().id)
    return {"items": [group_view(g) for g in items]}


@bp.get("/<group_id>")
@authenticated
@document_response(GroupOut)
async def get(group_id: str) -> ResponseReturnValue:
    return group_view(await services().groups.get(current_user().id, parse_id(group_id)))


@bp.patch("/<group_id>")
@authenticated
@validate_request(GroupPatch)
@document_response(GroupOut)
async def patch(group_id: str, data: GroupPatch) -> ResponseReturnValue:
    """Change the name, members (in order), strategy or max_speakers."""
    group = await services().groups.update(
        current_user().id,
        parse_id(group_id),
        name=data.name,
        character_ids=data.character_ids,
        strategy=data.strategy,
        max_speakers=data.max_speakers,
    )
    return group_view(group)


@bp.delete("/<group_id>")
@authenticated
async def delete(group_id: str) -> ResponseReturnValue:
    """Delete the group with its conversation and memories."""
    await services().groups.delete(current_user().id, parse_id(group_id))
    return no_content()


def _turn_shape(result: dict[str, Any]) -> dict[str, Any]:
    return result


@bp.post("/<group_id>/messages")
@authenticated
@rate_limited
@validate_request(ChatIn)
@document_response(GroupTurnOut)
async def send(group_id: str, data: ChatIn) -> ResponseReturnValue:
    """[stream] Send a message; `user_message`, `speakers`, `delta`… (tagged with
    `character_id`), `reply` per speaker, `done`."""
    run = await services().groups.send(current_user().id, parse_id(group_id), data.content)
    return await run_response(run, _turn_shape)


@bp.post("/<group_id>/stop")
@authenticated
@document_response(StoppedOut)
async def stop(group_id: str) -> ResponseReturnValue:
    """Interrupt the running turn; each speaker's partial text is stored `interrupted`."""
    stopped = await services().groups.stop(current_user().id, parse_id(group_id))
    return {"stopped": stopped}


@bp.get("/<group_id>/messages")
@authenticated
@validate_querystring(HistoryQuery)
@document_response(MessagePage)
async def history(group_id: str, query_args: HistoryQuery) -> ResponseReturnValue:
    """Paginated history, newest last within a page; `before` is exclusive."""
    page = await services().groups.history(
        current_user().id,
        parse_id(group_id),
        limit=query_args.limit,
        before=before_id(query_args.before),
    )
    return page_view(page)


@bp.get("/<group_id>/memories")
@authenticated
@validate_querystring(GroupMemoriesQuery)
@document_response(MemoryList)
async def memories(group_id: str, query_args: GroupMemoriesQuery) -> ResponseReturnValue:
    """Each member's memories of the group (`character_id` narrows to one character)."""
    items = await services().groups.memories(
        current_user().id, parse_id(group_id), query_args.character_id
    )
    return {"items": [memory_view(m, with_character=True) for m in items]}
