"""Memories: summaries of compressed messages, per conversation (and per character in a group)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    bindparam,
    case,
    delete,
    select,
    update,
)

from . import rows, tree
from .direct import Direct
from .records import Memory, MemoryKind
from .schema import memories, memory_messages, messages


def _unprotected() -> ColumnElement[bool]:
    """Rows compression may rewrite or merge: written by it, never edited nor pinned."""
    return and_(
        memories.c.origin == "compressed",
        memories.c.edited_at.is_(None),
        memories.c.pinned.is_(False),
    )


def list_memories(
    conn: Connection,
    conversation_id: int,
    *,
    character_id: int | None = None,
    all_characters: bool = False,
) -> list[Memory]:
    """The conversation's memories: long_term first, then short_term, each oldest first.

    Direct conversations: ``character_id`` None. Group conversations: a
    character's own memories with ``character_id``, or every row with
    ``all_characters=True``.
    """
    params: dict[str, int] = {"conversation_id": conversation_id}
    if all_characters:
        query = _list_memories_statement("all")
    elif character_id is None:
        query = _list_memories_statement("none")
    else:
        query = _list_memories_statement("one")
        params["character_id"] = character_id
    return [rows.memory_of(found) for found in query.mappings(conn, params)]


@lru_cache(maxsize=3)
def _list_memories_statement(characters: Literal["all", "none", "one"]) -> Direct:
    """(Read by every prompt: on the driver's cursor, see ``storage.direct``.)"""
    query = select(memories).where(memories.c.conversation_id == bindparam("conversation_id"))
    if characters == "none":
        query = query.where(memories.c.character_id.is_(None))
    elif characters == "one":
        query = query.where(memories.c.character_id == bindparam("character_id"))
    long_term_first = case((memories.c.kind == "long_term", 0), else_=1)
    return Direct(query.order_by(long_term_first, memories.c.id))


def apply_compression(
    conn: Connection,
    conversation_id: int,
    *,
    upto_message_id: int,
    summaries: Mapping[int | None, Sequence[tuple[str, int]]],
    message_ids: Sequence[int] | None = None,
) -> int:
    """Mark messages compressed and store their summaries, atomically.

    Marks the messages summarised: ``message_ids`` when given (what
    ``messages.oldest_uncompressed`` returned), else the active path's messages
    with ``id <= upto_message_id``; in both cases only those still in the
    conversation and not compressed yet, so a message inserted while the
    summary was being written is never marked. ``summaries`` maps a character
    id (None for a direct conversation) to ``(content, importance)`` pairs,
    stored as short_term memories, each recording the messages it summarises.
    Returns the number of messages marked; when that is 0 (another run already
    compressed them) no memories are stored, so a retried or duplicated job
    cannot double-count.
    """
    if message_ids is None:
        candidates = [
            i for i in tree.active_path_ids(conn, conversation_id) if i <= upto_message_id
        ]
    else:
        candidates = [i for i in message_ids if i <= upto_message_id]
    marked_ids = list(
        conn.execute(
            update(messages)
            .where(
                messages.c.conversation_id == conversation_id,
                messages.c.id.in_(sorted(set(candidates))),
                messages.c.compressed.is_(False),
            )
            .values(compressed=True)
            .returning(messages.c.id)
        ).scalars()
    )
    if not marked_ids:
        return 0
    _insert(conn, conversation_id, "short_term", summaries, marked_ids)
    return len(marked_ids)


def replace_with_long_term(
    conn: Connection,
    conversation_id: int,
    *,
    character_id: int | None,
    remove_ids: Sequence[int],
    long_term: Sequence[tuple[str, int]],
) -> bool:
    """Delete the merged memories (``remove_ids``) and insert the long_term ones, atomically.

    Only rows of this conversation and ``character_id`` are deleted. The long_term
    memories record every message the merged ones summarised. Returns False, changing
    nothing, when one of ``remove_ids`` is gone (a user deleted it) or one of this
    character's was written, edited or pinned by a user meanwhile (a user's
    memory is never merged; the next compression merges again).
    """
    found = conn.execute(
        select(memories.c.id, _unprotected().label("mergeable"))
        .where(memories.c.conversation_id == conversation_id, memories.c.id.in_(set(remove_ids)))
        .where(
            memories.c.character_id.is_(None)
            if character_id is None
            else memories.c.character_id == character_id
        )
    ).all()
    rest = conn.execute(
        select(memories.c.id).where(
            memories.c.conversation_id == conversation_id, memories.c.id.in_(set(remove_ids))
        )
    ).scalars()
    if len(set(rest)) != len(set(remove_ids)) or not all(row.mergeable for row in found):
        return False
    wanted = sorted(row.id for row in found)
    covered = _covered(conn, wanted)
    if wanted:
        conn.execute(delete(memories).where(memories.c.id.in_(wanted)))
    _insert(conn, conversation_id, "long_term", {character_id: long_term}, covered)
    return True


def _insert(
    conn: Connection,
    conversation_id: int,
    kind: str,
    contents: Mapping[int | None, Sequence[tuple[str, int]]],
    message_ids: Iterable[int],
) -> None:
    covered = sorted(set(message_ids))
    for character_id, items in contents.items():
        for content, importance in items:
            memory_id = conn.execute(
                memories.insert()
                .values(
                    conversation_id=conversation_id,
                    character_id=character_id,
                    kind=kind,
                    content=content,
                    importance=importance,
                )
                .returning(memories.c.id)
            ).scalar_one()
            if covered:
                conn.execute(
                    memory_messages.insert(),
                    [{"memory_id": memory_id, "message_id": m} for m in covered],
                )


def _covered(conn: Connection, memory_ids: Sequence[int]) -> list[int]:
    if not memory_ids:
        return []
    return list(
        conn.execute(
            select(memory_messages.c.message_id)
            .where(memory_messages.c.memory_id.in_(sorted(set(memory_ids))))
            .distinct()
        ).scalars()
    )


def summarised_message_ids(conn: Connection, memory_id: int) -> list[int]:
    """The ids of the messages a memory summarises, ascending (empty: not recorded)."""
    return sorted(_covered(conn, [memory_id]))


# ---- memories and the tree


_LINKS = Direct(  # read by every prompt
    select(
        memory_messages.c.memory_id,
        memory_messages.c.message_id,
        memories.c.created_at,
        messages.c.id.label("present"),
        messages.c.edited_at,
    )
    .join_from(memory_messages, memories, memories.c.id == memory_messages.c.memory_id)
    .outerjoin(messages, messages.c.id == memory_messages.c.message_id)
    .where(memories.c.conversation_id == bindparam("conversation_id"))
)


def stale_memory_ids(conn: Connection, conversation_id: int) -> list[int]:
    """Memories of the conversation that must not be used in prompts, ascending.

    A memory is stale when one of the messages it summarises is no longer on the
    active path (another branch is active, or it was deleted) or was edited after
    the memory was made. Memories that record no messages (made before
    messages were recorded, or written by a user) are never stale.
    """
    links = _LINKS.rows(conn, {"conversation_id": conversation_id})
    if not links:
        return []
    on_path = set(tree.active_path_ids(conn, conversation_id))
    stale = {
        memory_id
        for memory_id, message_id, created_at, present, edited_at in links
        if present is None
        or message_id not in on_path
        or (edited_at is not None and edited_at > created_at)
    }
    return sorted(stale)


def list_valid_memories(
    conn: Connection,
    conversation_id: int,
    *,
    character_id: int | None = None,
    all_characters: bool = False,
) -> list[Memory]:
    """``list_memories`` without the stale ones: what a prompt may use."""
    found = list_memories(
        conn, conversation_id, character_id=character_id, all_characters=all_characters
    )
    if not found:  # no staleness to look for (a new conversation's every prompt)
        return []
    stale = set(stale_memory_ids(conn, conversation_id))
    return [m for m in found if m.id not in stale]


def invalidate_stale(conn: Connection, conversation_id: int) -> list[int]:
    """Drop the stale memories so compression rebuilds them; returns the ids dropped.

    Also dropped: every memory covering a message of the active path at or after
    the first message a stale one covered, so the compressed messages stay a
    prefix of the active path (``messages.count_uncompressed`` relies on it).
    A memory a user wrote, edited or pinned is kept instead, but no longer records
    the messages it summarised (so it is never stale again).
    The messages the dropped memories summarised that no remaining memory covers
    are marked uncompressed again: they count as uncompressed history (in prompts
    and for the compression trigger) until a new memory covers them.
    """
    stale = set(stale_memory_ids(conn, conversation_id))
    if not stale:
        return []
    path = tree.active_path_ids(conn, conversation_id)
    position = {message_id: i for i, message_id in enumerate(path)}
    released_positions = [position[m] for m in _covered(conn, sorted(stale)) if m in position]
    if released_positions:
        later = path[min(released_positions) :]
        stale.update(
            conn.execute(
                select(memory_messages.c.memory_id)
                .join(memories, memories.c.id == memory_messages.c.memory_id)
                .where(
                    memories.c.conversation_id == conversation_id,
                    memory_messages.c.message_id.in_(later),
                )
                .distinct()
            ).scalars()
        )
    affected = sorted(stale)
    covered = set(_covered(conn, affected))
    kept = set(
        conn.execute(
            select(memories.c.id).where(memories.c.id.in_(affected), ~_unprotected())
        ).scalars()
    )
    dropped = [m for m in affected if m not in kept]
    if kept:  # a user's memory stays, detached from the messages it summarised
        conn.execute(delete(memory_messages).where(memory_messages.c.memory_id.in_(sorted(kept))))
    conn.execute(delete(memories).where(memories.c.id.in_(dropped)))
    still_covered = set(
        conn.execute(
            select(memory_messages.c.message_id).where(
                memory_messages.c.message_id.in_(sorted(covered))
            )
        ).scalars()
    )
    released = sorted(covered - still_covered)
    if released:
        conn.execute(
            update(messages)
            .where(
                messages.c.conversation_id == conversation_id,
                messages.c.id.in_(released),
            )
            .values(compressed=False)
        )
    return dropped


# ---- memories users see and shape


def get_memory(conn: Connection, conversation_id: int, memory_id: int) -> Memory | None:
    """The conversation's memory with that id, or None."""
    row = conn.execute(
        select(memories).where(
            memories.c.conversation_id == conversation_id, memories.c.id == memory_id
        )
    ).first()
    return rows.memory(row) if row else None


def add_memory(
    conn: Connection,
    conversation_id: int,
    *,
    character_id: int | None,
    content: str,
    importance: int,
    pinned: bool,
    kind: MemoryKind = "long_term",
) -> Memory:
    """Store a memory a user wrote (``origin`` "user"; it summarises no message)."""
    row = conn.execute(
        memories.insert()
        .values(
            conversation_id=conversation_id,
            character_id=character_id,
            kind=kind,
            content=content,
            importance=importance,
            pinned=pinned,
            origin="user",
        )
        .returning(*memories.c)
    ).one()
    return rows.memory(row)


def update_memory(
    conn: Connection,
    conversation_id: int,
    memory_id: int,
    *,
    now: datetime,
    content: str | None = None,
    importance: int | None = None,
    pinned: bool | None = None,
) -> Memory | None:
    """A user's change to a memory (``edited_at`` = ``now``); None when there is no such memory.

    Without any field the memory is returned unchanged.
    """
    values: dict[str, Any] = {}
    if content is not None:
        values["content"] = content
    if importance is not None:
        values["importance"] = importance
    if pinned is not None:
        values["pinned"] = pinned
    if not values:
        return get_memory(conn, conversation_id, memory_id)
    row = conn.execute(
        update(memories)
        .where(memories.c.conversation_id == conversation_id, memories.c.id == memory_id)
        .values(**values, edited_at=now)
        .returning(*memories.c)
    ).first()
    return rows.memory(row) if row else None


def delete_memory(conn: Connection, conversation_id: int, memory_id: int) -> bool:
    """Delete one memory; False when the conversation has no such memory.

    The messages it summarised stay compressed: deleting a memory forgets them.
    """
    deleted = conn.execute(
        delete(memories)
        .where(memories.c.conversation_id == conversation_id, memories.c.id == memory_id)
        .returning(memories.c.id)
    ).first()
    return deleted is not None
