"""Conversation trees: select, edit, delete, branch, regenerate, export and import, for chats
and groups alike.

``{conv}`` is ``/api/characters/{id}/chat`` or ``/api/groups/{id}``; both prefixes
route to the same handlers, which name the conversation with a ``ConversationRef``.
"""

from __future__ import annotations

from quart import Blueprint, Response, request
from quart.typing import ResponseReturnValue
from quart_schema import document_response, validate_querystring, validate_request

from app.openapi import LLM_ERRORS, errors, no_content_response, raw_body, streams, text_response
from app.routes.common import (
    authenticated,
    current_user,
    no_content,
    quota_checked,
    rate_limited,
    run_response,
    services,
)
from app.schemas import (
    ChatIn,
    ChatOut,
    ConversationExport,
    ExportQuery,
    GroupTurnOut,
    MessageOut,
    MessagePage,
    MessagePatch,
    ReplyOut,
)
from app.services.conversation_tree import ConversationKind, ConversationRef
from app.views import message_view, page_view, parse_id

bp = Blueprint("tree", __name__)

CHAT = "/api/characters/<character_id>/chat"
GROUP = "/api/groups/<group_id>"


def _ref(kind: ConversationKind, owner: dict[str, str]) -> ConversationRef:
    """The conversation named by the path's `character_id` or `group_id`."""
    (owner_id,) = owner.values()
    return ConversationRef(kind, _canonical(owner_id))


def _canonical(raw: str) -> int | None:
    """An id from the path; None (404) unless written canonically (`05` is not `5`)."""
    parsed = parse_id(raw)
    return parsed if parsed is not None and str(parsed) == raw else None


def _register(kind: ConversationKind, prefix: str) -> None:
    name = f"{kind}_"

    @bp.post(f"{prefix}/messages/<message_id>/select", endpoint=f"{name}select")
    @authenticated
    @document_response(MessagePage)
    @errors(404, 409)
    async def select(message_id: str, **owner: str) -> ResponseReturnValue:
        """Make the message active; the last page of the new active path.

        The new leaf is reached from the message by taking, at each level, the
        child that was active last. 409 `generation_in_progress` while a reply
        is being generated in this conversation.
        """
        page = await services().tree.select(
            current_user().id, _ref(kind, owner), _canonical(message_id)
        )
        return page_view(page)

    @bp.patch(f"{prefix}/messages/<message_id>", endpoint=f"{name}edit")
    @authenticated
    @validate_request(MessagePatch)
    @document_response(MessageOut)
    @errors(400, 404, 409, 413)
    async def edit(message_id: str, data: MessagePatch, **owner: str) -> ResponseReturnValue:
        """Edit a message in place (`edited_at` set; the id stays)."""
        message = await services().tree.edit(
            current_user().id, _ref(kind, owner), _canonical(message_id), data.content
        )
        return message_view(message)

    @bp.delete(f"{prefix}/messages/<message_id>", endpoint=f"{name}delete")
    @authenticated
    @no_content_response
    @errors(404, 409)
    async def delete(message_id: str, **owner: str) -> ResponseReturnValue:
        """Delete the message and all its descendants (204).

        If it was on the active path, the path continues through its parent's
        most recently active remaining child, or ends at the parent.
        """
        await services().tree.delete(current_user().id, _ref(kind, owner), _canonical(message_id))
        return no_content()

    @bp.get(f"{prefix}/export", endpoint=f"{name}export")
    @authenticated
    @validate_querystring(ExportQuery)
    @document_response(ConversationExport)
    @text_response(
        "application/json", "The conversation (`fastnpc`) or its active path (`jsonl`).",
        "application/jsonl",
    )
    @errors(400, 404)
    async def export(query_args: ExportQuery, **owner: str) -> ResponseReturnValue:
        """`format=fastnpc` (default): the whole tree as JSON; `format=jsonl`: the active
        path as SillyTavern chat JSONL (a header line, then `name`, `is_user`, `mes`,
        `send_date` per message)."""
        exported = await services().tree.export(
            current_user().id, _ref(kind, owner), query_args.format
        )
        if exported.text is not None:
            return Response(exported.text, content_type=f"{exported.media_type}; charset=utf-8")
        assert exported.document is not None
        return exported.document

    @bp.post(f"{prefix}/import", endpoint=f"{name}import")
    @authenticated
    @document_response(MessagePage)
    @errors(400, 404, 409, 413)
    @raw_body(
        "The tree (`fastnpc`, JSON) or SillyTavern chat JSONL.",
        "application/json",
        "application/jsonl",
        "application/x-ndjson",
    )
    async def import_(**owner: str) -> ResponseReturnValue:
        """Import an export into an EMPTY conversation (else 409 `conflict`).

        Body: the `fastnpc` document (`application/json`) or SillyTavern JSONL
        (`application/jsonl` or `application/x-ndjson`). Answers the active
        path's last page; invalid content is 400 and nothing is stored.
        """
        body = await request.get_data(as_text=False)
        assert isinstance(body, bytes)
        page = await services().tree.import_(
            current_user().id,
            _ref(kind, owner),
            body,
            request.headers.get("Content-Type", ""),
        )
        return page_view(page)


_register("chat", CHAT)
_register("group", GROUP)


# ---- branch and regenerate: generations, streamed like sending


@bp.post(f"{CHAT}/messages/<message_id>/branch", endpoint="chat_branch")
@authenticated
@rate_limited
@validate_request(ChatIn)
@document_response(ChatOut)
@errors(400, 404, 413, *LLM_ERRORS)
@streams
@quota_checked
async def chat_branch(character_id: str, message_id: str, data: ChatIn) -> ResponseReturnValue:
    """[stream] A new user message next to the user message `message_id`, made active, and
    its reply, exactly as sending (`user_message`, `delta`…, `reply`, `done`)."""
    run = await services().chat.branch(
        current_user().id, _canonical(character_id), _canonical(message_id), data.content
    )
    return await run_response(run, dict)


@bp.post(f"{CHAT}/messages/<message_id>/regenerate", endpoint="chat_regenerate_message")
@authenticated
@rate_limited
@document_response(ReplyOut)
@errors(400, 404, *LLM_ERRORS)
@streams
@quota_checked
async def chat_regenerate(character_id: str, message_id: str) -> ResponseReturnValue:
    """[stream] A new reply next to the assistant message `message_id`, from the path up to
    its parent, made active; the old one stays as an alternative."""
    run = await services().chat.regenerate(
        current_user().id, _canonical(character_id), _canonical(message_id)
    )
    return await run_response(run, lambda r: {"reply": r["reply"], "lore": r["lore"]})


@bp.post(f"{GROUP}/messages/<message_id>/branch", endpoint="group_branch")
@authenticated
@rate_limited
@validate_request(ChatIn)
@document_response(GroupTurnOut)
@errors(400, 404, 413, *LLM_ERRORS)
@streams
@quota_checked
async def group_branch(group_id: str, message_id: str, data: ChatIn) -> ResponseReturnValue:
    """[stream] A new user message next to the user message `message_id`, made active, and a
    whole turn from there (speakers chosen again), exactly as sending."""
    run = await services().groups.send(
        current_user().id, _canonical(group_id), data.content, branch_of=_canonical(message_id)
    )
    return await run_response(run, dict)


@bp.post(f"{GROUP}/messages/<message_id>/regenerate", endpoint="group_regenerate_message")
@authenticated
@rate_limited
@document_response(GroupTurnOut)
@errors(400, 404, *LLM_ERRORS)
@streams
@quota_checked
async def group_regenerate(group_id: str, message_id: str) -> ResponseReturnValue:
    """[stream] A new reply by the same character next to the assistant message
    `message_id`, from the path up to its parent, made the leaf (`speakers`, `delta`…,
    `reply`, `done`)."""
    run = await services().groups.regenerate(
        current_user().id, _canonical(group_id), _canonical(message_id)
    )
    return await run_response(run, dict)
