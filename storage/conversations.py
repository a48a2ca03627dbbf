"""Conversations: one direct conversation per (user, character); one per group."""

from __future__ import annotations

from sqlalchemy import Connection, and_, bindparam, delete, select, update

from . import rows
from .direct import Direct
from .inserts import insert_or_ignore
from .records import Character, Conversation
from .schema import characters, conversations, memories, messages


def get_or_create_direct(conn: Connection, user_id: int, character_id: int) -> Conversation:
    """The user's conversation with that character, created if needed (race-free)."""
    row = insert_or_ignore(
        conn,
        conversations,
        {"user_id": user_id, "kind": "direct", "character_id": character_id},
        index_elements=["user_id", "character_id"],
    )
    if row is not None:
        return rows.conversation(row)
    existing = get_direct(conn, user_id, character_id)
    assert existing is not None  # the conflicting row is committed and never deleted here
    return existing


_DIRECT = select(conversations).where(
    conversations.c.user_id == bindparam("user_id"),
    conversations.c.character_id == bindparam("character_id"),
    conversations.c.kind == "direct",
)
_CONVERSATION = select(conversations).where(conversations.c.id == bindparam("id"))


def get_direct(conn: Connection, user_id: int, character_id: int) -> Conversation | None:
    """The user's direct conversation with that character, or None."""
    row = conn.execute(_DIRECT, {"user_id": user_id, "character_id": character_id}).first()
    return rows.conversation(row) if row else None


# a chat send reads both (``lookup_direct``): one statement, see ``storage.direct``
_CHARACTER_AND_DIRECT = Direct(
    select(characters, *(c.label(f"conversation_{c.key}") for c in conversations.c))
    .select_from(
        characters.outerjoin(
            conversations,
            and_(
                conversations.c.user_id == characters.c.user_id,
                conversations.c.character_id == characters.c.id,
                conversations.c.kind == "direct",
            ),
        )
    )
    .where(characters.c.id == bindparam("id"), characters.c.user_id == bindparam("user_id"))
)


def character_and_direct(
    conn: Connection, user_id: int, character_id: int
) -> tuple[Character | None, Conversation | None]:
    """`characters.get_character` and `get_direct` in one read."""
    found = _CHARACTER_AND_DIRECT.first(conn, {"id": character_id, "user_id": user_id})
    if found is None:
        return None, None
    character = rows.character_of(found)
    if found["conversation_id"] is None:
        return character, None
    prefix = "conversation_"
    return character, rows.conversation_of(
        {key[len(prefix) :]: value for key, value in found.items() if key.startswith(prefix)}
    )


def get_conversation(conn: Connection, conversation_id: int) -> Conversation | None:
    """The conversation with that id, or None."""
    row = conn.execute(_CONVERSATION, {"id": conversation_id}).first()
    return rows.conversation(row) if row else None


def clear_conversation(conn: Connection, conversation_id: int) -> None:
    """Delete the conversation's messages and memories (the conversation stays)."""
    conn.execute(delete(memories).where(memories.c.conversation_id == conversation_id))
    conn.execute(delete(messages).where(messages.c.conversation_id == conversation_id))
    conn.execute(
        update(conversations)
        .where(conversations.c.id == conversation_id)
        .values(active_leaf_id=None)
    )
