"""Memories users can see and shape, for chats and groups alike.

``{conv}`` is ``/api/characters/{id}/chat`` or ``/api/groups/{id}``; both prefixes route to
the same handlers (as ``routes.tree`` does); a group's memories also take ``character_id``.
"""

from __future__ import annotations

from quart import Blueprint
from quart.typing import ResponseReturnValue
from quart_schema import document_response, validate_querystring, validate_request

from app.openapi import errors, no_content_response
from app.routes.common import authenticated, current_user, no_content, services
from app.routes.tree import CHAT, GROUP, _canonical, _ref
from app.schemas import (
    GroupMemoriesQuery,
    GroupMemoryIn,
    MemoriesQuery,
    MemoryIn,
    MemoryList,
    MemoryOut,
    MemoryPatch,
)
from app.services.conversation_tree import ConversationKind
from app.services.memory_notes import MemoryChange
from app.views import memory_view, parse_id

bp = Blueprint("memories", __name__)


def _register(kind: ConversationKind, prefix: str) -> None:
    name = f"{kind}_memories_"
    group = kind == "group"
    query_model = GroupMemoriesQuery if group else MemoriesQuery
    body_model = GroupMemoryIn if group else MemoryIn

    @bp.get(f"{prefix}/memories", endpoint=f"{name}list")
    @authenticated
    @validate_querystring(query_model)
    @document_response(MemoryList)
    @errors(400, 404)
    async def list_(query_args: MemoriesQuery, **owner: str) -> ResponseReturnValue:
        """The conversation's memories: with `q`, ranked by relevance to `q` (Chinese by
        character bigrams, other text by words) combined with importance and recency; without
        `q`, newest first. `limit` (1–1000) keeps the first ones. In a group, `character_id`
        narrows to one member (400 for a character that is not a member)."""
        character_id = None
        if isinstance(query_args, GroupMemoriesQuery) and query_args.character_id is not None:
            character_id = parse_id(query_args.character_id)
        items = await services().memory_notes.list(
            current_user().id,
            _ref(kind, owner),
            query=query_args.q or None,
            limit=query_args.limit,
            character_id=character_id,
        )
        return {"items": [memory_view(m, with_character=group) for m in items]}

    @bp.post(f"{prefix}/memories", endpoint=f"{name}add")
    @authenticated
    @validate_request(body_model)
    @document_response(MemoryOut, 201)
    @errors(400, 404, 413)
    async def add(data: MemoryIn, **owner: str) -> ResponseReturnValue:
        """Write a memory (`origin` "user"; importance 1–5, default 3). Compression never
        rewrites or merges it. A group's memory names its member (`character_id`)."""
        character_id = None
        if isinstance(data, GroupMemoryIn):
            character_id = parse_id(data.character_id)
        memory = await services().memory_notes.add(
            current_user().id,
            _ref(kind, owner),
            content=data.content,
            importance=data.importance,
            pinned=data.pinned,
            character_id=character_id,
        )
        return memory_view(memory, with_character=group), 201

    @bp.patch(f"{prefix}/memories/<memory_id>", endpoint=f"{name}change")
    @authenticated
    @validate_request(MemoryPatch)
    @document_response(MemoryOut)
    @errors(400, 404, 413)
    async def change(memory_id: str, data: MemoryPatch, **owner: str) -> ResponseReturnValue:
        """Correct, re-weigh or (un)pin a memory (`edited_at` set). From then on compression
        never rewrites or merges it; a pinned memory is in every prompt."""
        memory = await services().memory_notes.change(
            current_user().id,
            _ref(kind, owner),
            _canonical(memory_id),
            MemoryChange(data.content, data.importance, data.pinned),
        )
        return memory_view(memory, with_character=group)

    @bp.delete(f"{prefix}/memories/<memory_id>", endpoint=f"{name}delete")
    @authenticated
    @no_content_response
    @errors(404)
    async def delete(memory_id: str, **owner: str) -> ResponseReturnValue:
        """Forget a memory (204)."""
        await services().memory_notes.delete(
            current_user().id, _ref(kind, owner), _canonical(memory_id)
        )
        return no_content()


_register("chat", CHAT)
_register("group", GROUP)
