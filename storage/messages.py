"""Messages: ids increase strictly (AUTOINCREMENT / identity), so id order is time order."""

from __future__ import annotations

from sqlalchemy import Connection, delete, func, select

from . import rows
from .errors import InvalidReference
from .records import Message, MessageRole, MessageStatus, Page
from .schema import messages


def add_message(
    conn: Connection,
    conversation_id: int,
    role: MessageRole,
    content: str,
    *,
    character_id: int | None = None,
    status: MessageStatus = "complete",
) -> Message:
    """Append a message to the conversation."""
    row = conn.execute(
        messages.insert()
        .values(
            conversation_id=conversation_id,
            role=role,
            content=content,
            character_id=character_id,
            status=status,
        )
        .returning(*messages.c)
    ).one()
    return rows.message(row)


def get_message(conn: Connection, message_id: int) -> Message | None:
    """The message with that id, or None."""
    row = conn.execute(select(messages).where(messages.c.id == message_id)).first()
    return rows.message(row) if row else None


def update_message(
    conn: Connection,
    message_id: int,
    *,
    content: str | None = None,
    status: MessageStatus | None = None,
) -> Message | None:
    """Change a message's content and/or status (e.g. finish a ``streaming`` one)."""
    values: dict[str, str] = {}
    if content is not None:
        values["content"] = content
    if status is not None:
        values["status"] = status
    if not values:
        return get_message(conn, message_id)
    row = conn.execute(
        messages.update().where(messages.c.id == message_id).values(**values).returning(*messages.c)
    ).first()
    return rows.message(row) if row else None


def list_messages(
    conn: Connection, conversation_id: int, *, limit: int, before: int | None
) -> Page:
    """The newest ``limit`` messages with id < ``before`` (exclusive), oldest first.

    ``next_before`` is the id of the oldest message in the page when older
    messages exist, otherwise None. Raises ``InvalidReference`` when ``before`` is
    not a message of this conversation.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    query = select(messages).where(messages.c.conversation_id == conversation_id)
    if before is not None:
        known = conn.execute(
            select(messages.c.id).where(
                messages.c.conversation_id == conversation_id, messages.c.id == before
            )
        ).first()
        if known is None:
            raise InvalidReference(f"message {before} is not in this conversation")
        query = query.where(messages.c.id < before)
    fetched = conn.execute(query.order_by(messages.c.id.desc()).limit(limit + 1)).all()
    items = [rows.message(row) for row in reversed(fetched[:limit])]
    next_before = items[0].id if len(fetched) > limit else None
    return Page(items=items, next_before=next_before)


def recent_uncompressed(conn: Connection, conversation_id: int, *, limit: int) -> list[Message]:
    """The newest ``limit`` uncompressed messages, oldest first."""
    result = conn.execute(
        select(messages)
        .where(messages.c.conversation_id == conversation_id, messages.c.compressed.is_(False))
        .order_by(messages.c.id.desc())
        .limit(limit)
    ).all()
    return [rows.message(row) for row in reversed(result)]


def count_uncompressed(conn: Connection, conversation_id: int) -> int:
    """How many messages of the conversation are not yet compressed."""
    return conn.execute(
        select(func.count())
        .select_from(messages)
        .where(messages.c.conversation_id == conversation_id, messages.c.compressed.is_(False))
    ).scalar_one()


def oldest_uncompressed(
    conn: Connection, conversation_id: int, *, keep_recent: int
) -> list[Message]:
    """All uncompressed messages except the newest ``keep_recent``, oldest first.

    This is what a compression would consume; pass the last id as
    ``memories.apply_compression(upto_message_id=...)``.
    """
    if keep_recent < 0:
        raise ValueError("keep_recent must not be negative")
    result = conn.execute(
        select(messages)
        .where(messages.c.conversation_id == conversation_id, messages.c.compressed.is_(False))
        .order_by(messages.c.id.desc())
        .offset(keep_recent)
    ).all()
    return [rows.message(row) for row in reversed(result)]


def last_assistant_message(conn: Connection, conversation_id: int) -> Message | None:
    """The newest assistant message of the conversation, or None."""
    row = conn.execute(
        select(messages)
        .where(messages.c.conversation_id == conversation_id, messages.c.role == "assistant")
        .order_by(messages.c.id.desc())
        .limit(1)
    ).first()
    return rows.message(row) if row else None


def delete_message(conn: Connection, message_id: int) -> None:
    """Delete one message (no error if it is gone)."""
    conn.execute(delete(messages).where(messages.c.id == message_id))


def last_speaker_in_group(conn: Connection, conversation_id: int) -> int | None:
    """The character id of the newest assistant message that has one, or None."""
    return conn.execute(
        select(messages.c.character_id)
        .where(
            messages.c.conversation_id == conversation_id,
            messages.c.role == "assistant",
            messages.c.character_id.is_not(None),
        )
        .order_by(messages.c.id.desc())
        .limit(1)
    ).scalar_one_or_none()
