"""Memories: summaries of compressed messages, per conversation (and per character in a group)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import Connection, case, delete, select, update

from . import rows
from .records import Memory
from .schema import memories, messages


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
    query = select(memories).where(memories.c.conversation_id == conversation_id)
    if not all_characters:
        query = query.where(
            memories.c.character_id.is_(None)
            if character_id is None
            else memories.c.character_id == character_id
        )
    long_term_first = case((memories.c.kind == "long_term", 0), else_=1)
    result = conn.execute(query.order_by(long_term_first, memories.c.id))
    return [rows.memory(row) for row in result]


def apply_compression(
    conn: Connection,
    conversation_id: int,
    *,
    upto_message_id: int,
    summaries: Mapping[int | None, Sequence[tuple[str, int]]],
) -> int:
    """Mark messages compressed and store their summaries, atomically.

    Marks only messages of the conversation with ``id <= upto_message_id``
    that are not compressed yet, so a message inserted while the summary was
    being written is never marked. ``summaries`` maps a character id (None for
    a direct conversation) to ``(content, importance)`` pairs, stored as
    short_term memories. Returns the number of messages marked; when that is 0
    (another run already compressed them) no memories are stored, so a retried
    or duplicated job cannot double-count.
    """
    marked = conn.execute(
        update(messages)
        .where(
            messages.c.conversation_id == conversation_id,
            messages.c.id <= upto_message_id,
            messages.c.compressed.is_(False),
        )
        .values(compressed=True)
    ).rowcount
    if marked == 0:
        return 0
    _insert(conn, conversation_id, "short_term", summaries)
    return marked


def replace_with_long_term(
    conn: Connection,
    conversation_id: int,
    *,
    character_id: int | None,
    remove_ids: Sequence[int],
    long_term: Sequence[tuple[str, int]],
) -> None:
    """Delete the merged memories (``remove_ids``) and insert the long_term ones, atomically.

    Only rows of this conversation and ``character_id`` are deleted.
    """
    if remove_ids:
        conn.execute(
            delete(memories).where(
                memories.c.conversation_id == conversation_id,
                memories.c.character_id.is_(None)
                if character_id is None
                else memories.c.character_id == character_id,
                memories.c.id.in_(sorted(set(remove_ids))),
            )
        )
    _insert(conn, conversation_id, "long_term", {character_id: long_term})


def _insert(
    conn: Connection,
    conversation_id: int,
    kind: str,
    contents: Mapping[int | None, Sequence[tuple[str, int]]],
) -> None:
    values = [
        {
            "conversation_id": conversation_id,
            "character_id": character_id,
            "kind": kind,
            "content": content,
            "importance": importance,
        }
        for character_id, items in contents.items()
        for content, importance in items
    ]
    if values:
        conn.execute(memories.insert(), values)
