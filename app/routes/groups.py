"""Group chat: groups of the caller's characters, their turns and history.

Their memories: `routes.memories`.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint
from quart.typing import ResponseReturnValue
from quart_schema import document_response, validate_querystring, validate_request

from app.openapi import LLM_ERRORS, errors, follows, no_content_response, streams
from app.routes.common import (
    authenticated,
    before_id,
    current_user,
    follow_response,
    no_content,
    quota_checked,
    rate_limited,
    run_response,
    services,
)
from app.schemas import (
    GroupContinueIn,
    GroupContinueOut,
    GroupIn,
    GroupList,
    GroupMessageIn,
    GroupOut,
    GroupPatch,
    GroupTurnOut,
    HistoryQuery,
    MessagePage,
    StoppedOut,
)
from app.views import group_view, page_view, parse_id

bp = Blueprint("groups", __name__, url_prefix="/api/groups")


@bp.post("")
@authenticated
@validate_request(GroupIn)
@document_response(GroupOut, 201)
@errors(400, 413)
async def create(data: GroupIn) -> ResponseReturnValue:
    """Create a group of 2–8 of your characters. `muted_character_ids` and the keys of
    `talkativeness` (0–1, default 0.5) must be members."""
    group = await services().groups.create(
        current_user().id,
        data.name,
        data.character_ids,
        strategy=data.strategy,
        max_speakers=data.max_speakers,
        muted_character_ids=data.muted_character_ids,
        talkativeness=data.talkativeness,
        allow_self_responses=data.allow_self_responses,
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
@errors(404)
async def get(group_id: str) -> ResponseReturnValue:
    return group_view(await services().groups.get(current_user().id, parse_id(group_id)))


@bp.patch("/<group_id>")
@authenticated
@validate_request(GroupPatch)
@document_response(GroupOut)
@errors(400, 404, 409, 413)
async def patch(group_id: str, data: GroupPatch) -> ResponseReturnValue:
    """Change the name, members (in order), strategy, max_speakers, muted members, self
    responses; `talkativeness` merges the given keys. Members who leave lose their mute and
    talkativeness."""
    group = await services().groups.update(
        current_user().id,
        parse_id(group_id),
        name=data.name,
        character_ids=data.character_ids,
        strategy=data.strategy,
        max_speakers=data.max_speakers,
        muted_character_ids=data.muted_character_ids,
        talkativeness=data.talkativeness,
        allow_self_responses=data.allow_self_responses,
    )
    return group_view(group)


@bp.delete("/<group_id>")
@authenticated
@no_content_response
@errors(404, 409)
async def delete(group_id: str) -> ResponseReturnValue:
    """Delete the group with its conversation and memories."""
    await services().groups.delete(current_user().id, parse_id(group_id))
    return no_content()


def _turn_shape(result: dict[str, Any]) -> dict[str, Any]:
    return result


@bp.post("/<group_id>/messages")
@authenticated
@rate_limited
@validate_request(GroupMessageIn)
@document_response(GroupTurnOut)
@errors(400, 404, 413, *LLM_ERRORS)
@streams
@quota_checked
async def send(group_id: str, data: GroupMessageIn) -> ResponseReturnValue:
    """[stream] One turn; `user_message` (only with `content`), `speakers`, `delta`…
    (tagged with `character_id`), `reply` per speaker, `done`. Without `content` nothing is
    stored for the user (`user_message` null) and the characters continue among themselves;
    `speaker_ids` replaces the strategy for this turn. A manual group with neither: 400."""
    run = await services().groups.send(
        current_user().id, parse_id(group_id), data.content, speaker_ids=data.speaker_ids
    )
    return await run_response(run, _turn_shape)


@bp.post("/<group_id>/continue")
@authenticated
@validate_request(GroupContinueIn)
@document_response(GroupContinueOut)
@errors(400, 404, 413, *LLM_ERRORS)
@streams
@quota_checked
async def continue_(group_id: str, data: GroupContinueIn) -> ResponseReturnValue:
    """[stream] `rounds` (1–10) turns without a user message, as one generation (one stop
    ends it; 409 while it runs); fewer when a round chooses nobody (that round sends nothing).
    Stream: per round `round` {"index": 0-based}, `speakers`, `delta`…, `reply`…; then `done`."""
    run = await services().groups.continue_(current_user().id, parse_id(group_id), data.rounds)
    return await run_response(run, _turn_shape)


@bp.post("/<group_id>/stop")
@authenticated
@document_response(StoppedOut)
@errors(404)
async def stop(group_id: str) -> ResponseReturnValue:
    """Interrupt the running turn; each speaker's partial text is stored `interrupted`."""
    stopped = await services().groups.stop(current_user().id, parse_id(group_id))
    return {"stopped": stopped}


@bp.get("/<group_id>/stream")
@authenticated
@follows
@errors(400, 404)
async def follow(group_id: str) -> ResponseReturnValue:
    """Follow the running turn (or continue) from any server process: its events so far (or
    those after `Last-Event-ID`), then live ones, to its terminal event; 204 when nothing runs."""
    group = await services().groups.get(current_user().id, parse_id(group_id))
    return await follow_response(group.conversation_id)


@bp.get("/<group_id>/messages")
@authenticated
@validate_querystring(HistoryQuery)
@document_response(MessagePage)
@errors(400, 404)
async def history(group_id: str, query_args: HistoryQuery) -> ResponseReturnValue:
    """Paginated history, newest last within a page; `before` is exclusive."""
    page = await services().groups.history(
        current_user().id,
        parse_id(group_id),
        limit=query_args.limit,
        before=before_id(query_args.before),
    )
    return page_view(page)
