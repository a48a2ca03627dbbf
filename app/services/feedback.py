"""Feedback on replies: users rate or comment, admins list."""

from __future__ import annotations

from app.errors import InvalidRequest
from storage import Database, InvalidReference, feedback
from storage.feedback import Feedback


class FeedbackService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self, user_id: int, *, message_id: int | None, rating: int | None, comment: str | None
    ) -> Feedback:
        """Store feedback (400 when it names a message the user cannot see)."""
        try:
            return await self._db.write(
                feedback.add_feedback,
                user_id,
                message_id=message_id,
                rating=rating,
                comment=comment,
            )
        except InvalidReference as exc:
            raise InvalidRequest(
                str(exc), details=[{"loc": ["message_id"], "msg": str(exc), "type": "reference"}]
            ) from None

    async def list(self, *, limit: int, before: int | None) -> list[Feedback]:
        return await self._db.read(feedback.list_feedback, limit=limit, before=before)
