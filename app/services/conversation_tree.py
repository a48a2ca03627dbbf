"""Conversation trees for one-to-one chats and groups alike: select, edit, delete, export, import.

Every change runs in ONE write transaction (errors raised inside it are
``ApiError`` subclasses whose code is the class's own: group commit re-raises
copies) that first checks the database's
``generations`` row for the conversation (409 ``generation_in_progress`` while
one runs, in any process), then changes the tree, then drops the memories the
change made stale; their rebuild is scheduled afterwards through the memory
service's durable jobs. Message ids of another conversation are 404.

Branch and regenerate (which stream a reply) live with the chat and group
services; they use ``storage.messages.add_message(parent_id=...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

from sqlalchemy import Connection

from app.errors import Conflict, GenerationInProgress, InvalidRequest, NotFound
from app.services.conversation_io import (
    ParsedTree,
    Speakers,
    export_jsonl,
    export_tree,
    parse_jsonl,
    parse_tree,
)
from app.services.memory import MemoryService
from storage import Database, characters, conversations, generations, groups, memories, users
from storage import messages as message_store
from storage import tree as tree_store
from storage.records import Character, Conversation, Group, Message, Page
from storage.timestamps import utcnow

T = TypeVar("T")

ConversationKind = Literal["chat", "group"]
ExportFormat = Literal["fastnpc", "jsonl"]
PAGE_SIZE = 50
JSONL_TYPES = ("application/jsonl", "application/x-ndjson", "application/x-jsonlines")


@dataclass(frozen=True)
class ConversationRef:
    """A conversation as the URL names it: a character's chat or a group, by path id."""

    kind: ConversationKind
    owner_id: int | None  # the character or group id (None: unparseable, i.e. 404)


@dataclass(frozen=True)
class _Target:
    conversation_id: int | None  # None: a one-to-one chat not started yet
    speakers: Speakers
    created_at: datetime


@dataclass(frozen=True)
class Export:
    """An export: a JSON document (``fastnpc``) or JSONL text."""

    media_type: str
    document: dict[str, Any] | None = None
    text: str | None = None


class ConversationTreeService:
    """Tree operations on the caller's conversations (no Quart; routes call these)."""

    def __init__(
        self,
        db: Database,
        memory: MemoryService | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = db
        self._memory = memory
        self._clock = clock

    # ---- operations

    async def select(self, user_id: int, ref: ConversationRef, message_id: int | None) -> Page:
        """Make the message active (walking down by last active child); the last page."""
        mid = _message_id(message_id)

        def change(conn: Connection, conversation_id: int) -> int:
            return tree_store.select_message(conn, conversation_id, mid)

        conversation_id, _ = await self._change(user_id, ref, change)
        return await self._db.read(
            message_store.list_messages, conversation_id, limit=PAGE_SIZE, before=None
        )

    async def edit(
        self, user_id: int, ref: ConversationRef, message_id: int | None, content: str
    ) -> Message:
        """Change a message's content in place (``edited_at`` set, the id stays)."""
        mid = _message_id(message_id)
        now = self._clock()

        def change(conn: Connection, conversation_id: int) -> Message:
            return tree_store.edit_message(conn, conversation_id, mid, content, now=now)

        _, edited = await self._change(user_id, ref, change)
        return edited

    async def delete(self, user_id: int, ref: ConversationRef, message_id: int | None) -> None:
        """Delete the message and its descendants; the active path moves as API.md says."""
        mid = _message_id(message_id)
        await self._change(
            user_id, ref, lambda conn, cid: tree_store.delete_subtree(conn, cid, mid)
        )

    async def export(self, user_id: int, ref: ConversationRef, fmt: ExportFormat) -> Export:
        """The whole tree (``fastnpc``) or the active path as SillyTavern JSONL."""

        def read(conn: Connection) -> Export:
            target = _resolve(conn, user_id, ref)
            cid = target.conversation_id
            if fmt == "jsonl":
                path = [] if cid is None else message_store.active_path(conn, cid)
                alternatives = {
                    m.id: tree_store.children(
                        conn, m.conversation_id, m.parent_id, role="assistant"
                    )
                    for m in path
                    if m.role == "assistant" and m.sibling_count > 1
                }
                text = export_jsonl(path, target.speakers, target.created_at, alternatives)
                return Export("application/jsonl", text=text)
            everything = [] if cid is None else tree_store.all_messages(conn, cid)
            leaf = None if cid is None else tree_store.active_leaf(conn, cid)
            return Export("application/json", document=export_tree(everything, leaf))

        return await self._db.read(read)

    async def import_(
        self, user_id: int, ref: ConversationRef, body: bytes, content_type: str
    ) -> Page:
        """Store an exported conversation into an EMPTY one (else 409 ``conflict``).

        ``content_type`` picks the format: ``application/json`` for ``fastnpc``,
        ``application/jsonl`` or ``application/x-ndjson`` for SillyTavern JSONL.
        Invalid content: 400 and nothing stored.
        """
        media = content_type.split(";")[0].strip().lower()
        if media == "application/json":
            parse = parse_tree
        elif media in JSONL_TYPES:
            parse = parse_jsonl
        else:
            raise InvalidRequest(
                "import takes application/json (fastnpc) or application/jsonl (SillyTavern)"
            )
        now = self._clock()

        def store(conn: Connection) -> int:
            target = _resolve(conn, user_id, ref, create=True)
            assert target.conversation_id is not None
            parsed: ParsedTree = parse(body, target.speakers, now=now)
            _check_idle(conn, target.conversation_id)
            try:
                tree_store.import_messages(
                    conn, target.conversation_id, parsed.items, parsed.active
                )
            except tree_store.NotEmpty:
                raise Conflict("import only into an empty conversation") from None
            return target.conversation_id

        conversation_id = await self._db.write(store)
        if self._memory is not None:
            await self._memory.maybe_schedule(conversation_id)
        return await self._db.read(
            message_store.list_messages, conversation_id, limit=PAGE_SIZE, before=None
        )

    # ---- the shared write path

    async def _change(
        self,
        user_id: int,
        ref: ConversationRef,
        change: Callable[[Connection, int], T],
    ) -> tuple[int, T]:
        """Run ``change(conn, conversation_id)`` after the checks; drop stale memories."""

        def write(conn: Connection) -> tuple[int, T, list[int]]:
            target = _resolve(conn, user_id, ref)
            if target.conversation_id is None:
                raise NotFound("no such message")
            _check_idle(conn, target.conversation_id)
            try:
                result = change(conn, target.conversation_id)
            except tree_store.TreeError:
                raise NotFound("no such message") from None
            stale = memories.invalidate_stale(conn, target.conversation_id)
            return target.conversation_id, result, stale

        conversation_id, result, _ = await self._db.write(write)
        if self._memory is not None:
            # the active path changed or memories were dropped: maybe compress (durable job)
            await self._memory.maybe_schedule(conversation_id)
        return conversation_id, result


def _message_id(message_id: int | None) -> int:
    if message_id is None:
        raise NotFound("no such message")
    return message_id


def _check_idle(conn: Connection, conversation_id: int) -> None:
    if generations.active_generation(conn, conversation_id, now=utcnow()) is not None:
        raise GenerationInProgress("a reply for this conversation is still being generated")


def message_in(conn: Connection, conversation_id: int, message_id: int | None) -> Message:
    """Inside a transaction: that message of the conversation (404 for any other id)."""
    found = None
    if message_id is not None:
        found = tree_store.get_in_conversation(conn, conversation_id, message_id)
    if found is None:
        raise NotFound("no such message in this conversation")
    return found


@dataclass(frozen=True)
class Owned:
    """What a `ConversationRef` names for its user: the character (with its conversation, None
    before a one-to-one chat starts) or the group."""

    character: Character | None
    conversation: Conversation | None
    group: Group | None

    @property
    def conversation_id(self) -> int | None:
        if self.group is not None:
            return self.group.conversation_id
        return None if self.conversation is None else self.conversation.id


def owned(conn: Connection, user_id: int, ref: ConversationRef, *, create: bool = False) -> Owned:
    """Inside a transaction: the caller's character or group named by ``ref`` (404 when it is
    not theirs); ``create`` starts a one-to-one conversation that has not started yet."""
    if ref.owner_id is None:
        raise NotFound(f"no such {'character' if ref.kind == 'chat' else 'group'}")
    if ref.kind == "chat":
        character = characters.get_character(conn, user_id, ref.owner_id)
        if character is None:
            raise NotFound("no such character")
        conversation = (
            conversations.get_or_create_direct(conn, user_id, character.id)
            if create
            else conversations.get_direct(conn, user_id, character.id)
        )
        return Owned(character, conversation, None)
    group = groups.get_group(conn, user_id, ref.owner_id)
    if group is None:
        raise NotFound("no such group")
    return Owned(None, None, group)


def _resolve(
    conn: Connection, user_id: int, ref: ConversationRef, *, create: bool = False
) -> _Target:
    """The caller's conversation named by ``ref`` (404 when it is not theirs)."""
    found = owned(conn, user_id, ref, create=create)
    user = users.get_user(conn, user_id)
    user_name = user.username if user is not None else "User"
    if found.character is not None:
        character, conversation = found.character, found.conversation
        speakers = Speakers(user_name, character.name, character.id, {character.id: character.name})
        created_at = character.created_at if conversation is None else conversation.created_at
        return _Target(found.conversation_id, speakers, created_at)
    group = found.group
    assert group is not None
    members = characters.get_characters(conn, user_id, group.character_ids)
    speakers = Speakers(user_name, group.name, None, {c.id: c.name for c in members})
    return _Target(group.conversation_id, speakers, group.created_at)
