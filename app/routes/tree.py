"""Conversation trees: select, edit, delete, export and import, for chats and groups alike.

``{conv}`` is ``/api/characters/{id}/chat`` or ``/api/groups/{id}``; both prefixes
route to the same handlers, which name the conversation with a ``ConversationRef``.
"""

from __future__ import annotations

from quart import Blueprint, Response, request
from quart.typing import ResponseReturnValue
from quart_schema import document_response, validate_querystring, validate_request

from app.openapi import errors, no_content_response, raw_body, text_response
from app.routes.common import authenticated, current_user, no_content, services
from app.schemas import ConversationExport, ExportQuery, MessageOut, MessagePage, MessagePatch
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
