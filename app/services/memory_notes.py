"""Memories users can see and shape: list and search, write, correct, pin, delete.

For one-to-one chats and groups alike (a ``ConversationRef`` names the conversation; in a
group, each memory belongs to one member). A memory a user wrote (``origin`` "user") or
changed (``edited_at`` set) is never rewritten or merged by compression
(``storage.memories``). Memory ids of another conversation, or of another user's, are 404.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from app.errors import InvalidRequest, NotFound
from app.services import memory_rank
from app.services.conversation_tree import ConversationRef, owned
from storage import Database, memories
from storage.records import Memory
from storage.timestamps import utcnow

DEFAULT_IMPORTANCE = 3


@dataclass(frozen=True)
class _Target:
    conversation_id: int | None  # None: a one-to-one chat not started yet
    members: tuple[int, ...] | None  # a group's members; None for a one-to-one chat


@dataclass(frozen=True)
class MemoryChange:
    """A user's change to a memory; None leaves a field as it is."""

    content: str | None = None
    importance: int | None = None
    pinned: bool | None = None


class MemoryNotesService:
    """The caller's memories of their conversations (no Quart; routes call these)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def list(
        self,
        user_id: int,
        ref: ConversationRef,
        *,
        query: str | None = None,
        limit: int | None = None,
        character_id: int | None = None,
    ) -> list[Memory]:
        """Ranked against ``query`` (relevance, importance, recency), else newest first.

        In a group, every member's memories, or one member's (``character_id``; 400 for
        a character that is not a member).
        """

        def read(conn: Connection) -> list[Memory]:
            target = _resolve(conn, user_id, ref, create=False)
            if target.conversation_id is None:
                return []
            if target.members is None:
                found = memories.list_memories(conn, target.conversation_id)
            elif character_id is None:
                found = memories.list_memories(conn, target.conversation_id, all_characters=True)
            else:
                _check_member(target, character_id)
                found = memories.list_memories(
                    conn, target.conversation_id, character_id=character_id
                )
            return memory_rank.search(found, query, limit)

        return await self._db.read(read)

    async def add(
        self,
        user_id: int,
        ref: ConversationRef,
        *,
        content: str,
        importance: int | None,
        pinned: bool,
        character_id: int | None = None,
    ) -> Memory:
        """Store a memory the user wrote (``origin`` "user"). A group's names its member."""

        def write(conn: Connection) -> Memory:
            target = _resolve(conn, user_id, ref, create=True)
            assert target.conversation_id is not None
            if target.members is not None:
                if character_id is None:
                    raise InvalidRequest("`character_id`: a group's memory belongs to a member")
                _check_member(target, character_id)
            elif character_id is not None:
                raise InvalidRequest("`character_id` is only for a group's memories")
            return memories.add_memory(
                conn,
                target.conversation_id,
                character_id=character_id,
                content=content,
                importance=DEFAULT_IMPORTANCE if importance is None else importance,
                pinned=pinned,
            )

        return await self._db.write(write)

    async def change(
        self, user_id: int, ref: ConversationRef, memory_id: int | None, change: MemoryChange
    ) -> Memory:
        """Correct, re-weigh or (un)pin a memory; ``edited_at`` is set."""
        now = utcnow()

        def write(conn: Connection) -> Memory:
            conversation_id = _conversation_id(conn, user_id, ref, memory_id)
            assert memory_id is not None
            changed = memories.update_memory(
                conn,
                conversation_id,
                memory_id,
                now=now,
                content=change.content,
                importance=change.importance,
                pinned=change.pinned,
            )
            if changed is None:
                raise NotFound("no such memory")
            return changed

        return await self._db.write(write)

    async def delete(self, user_id: int, ref: ConversationRef, memory_id: int | None) -> None:
        """Delete a memory (the messages it summarised stay compressed: it is forgotten)."""

        def write(conn: Connection) -> None:
            conversation_id = _conversation_id(conn, user_id, ref, memory_id)
            assert memory_id is not None
            if not memories.delete_memory(conn, conversation_id, memory_id):
                raise NotFound("no such memory")

        await self._db.write(write)


def _resolve(conn: Connection, user_id: int, ref: ConversationRef, *, create: bool) -> _Target:
    """The caller's conversation named by ``ref`` (404 when it is not theirs)."""
    found = owned(conn, user_id, ref, create=create)
    members = None if found.group is None else tuple(found.group.character_ids)
    return _Target(found.conversation_id, members)


def _conversation_id(
    conn: Connection, user_id: int, ref: ConversationRef, memory_id: int | None
) -> int:
    target = _resolve(conn, user_id, ref, create=False)
    if target.conversation_id is None or memory_id is None:
        raise NotFound("no such memory")
    return target.conversation_id


def _check_member(target: _Target, character_id: int) -> None:
    if target.members is not None and character_id not in target.members:
        raise InvalidRequest("`character_id` is not a member of this group")
