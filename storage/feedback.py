"""Feedback: a user's rating (-1 or 1) and/or comment, optionally on one message they can see."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from . import rows
from .errors import InvalidReference
from .records import Message, User
from .schema import conversations, feedback, messages, users

__all__ = ["Feedback", "add_feedback", "list_feedback"]


@dataclass(frozen=True, slots=True)
class Feedback:
    id: int
    user: User
    message_id: int | None  # None when it named no message or the message was deleted
    rating: int | None
    comment: str | None
    created_at: datetime
    message: Message | None = None  # filled by ``list_feedback``


def add_feedback(
    conn: Connection,
    user_id: int,
    *,
    message_id: int | None,
    rating: int | None,
    comment: str | None,
) -> Feedback:
    """Store feedback. ``InvalidReference`` if ``message_id`` is not a message in one
    of the user's conversations."""
    if message_id is not None:
        owned = conn.execute(
            select(messages.c.id)
            .join(conversations, conversations.c.id == messages.c.conversation_id)
            .where(messages.c.id == message_id, conversations.c.user_id == user_id)
        ).first()
        if owned is None:
            raise InvalidReference("`message_id` names no message of yours")
    row = conn.execute(
        feedback.insert()
        .values(user_id=user_id, message_id=message_id, rating=rating, comment=comment)
        .returning(*feedback.c)
    ).one()
    user = rows.user(conn.execute(select(users).where(users.c.id == user_id)).one())
    return Feedback(row.id, user, row.message_id, row.rating, row.comment, row.created_at)


def list_feedback(conn: Connection, *, limit: int, before: int | None) -> list[Feedback]:
    """Newest first; ``before`` (exclusive) is a feedback id."""
    query = select(feedback)
    if before is not None:
        query = query.where(feedback.c.id < before)
    found = conn.execute(query.order_by(feedback.c.id.desc()).limit(limit)).all()
    user_ids = {row.user_id for row in found}
    message_ids = {row.message_id for row in found if row.message_id is not None}
    by_user = {
        row.id: rows.user(row)
        for row in conn.execute(select(users).where(users.c.id.in_(user_ids)))
    }
    by_message = {
        row.id: rows.message(row)
        for row in conn.execute(select(messages).where(messages.c.id.in_(message_ids)))
    }
    return [
        Feedback(
            id=row.id,
            user=by_user[row.user_id],
            message_id=row.message_id,
            message=None if row.message_id is None else by_message.get(row.message_id),
            rating=row.rating,
            comment=row.comment,
            created_at=row.created_at,
        )
        for row in found
    ]
