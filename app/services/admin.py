"""Administration: users with their counts, enabling/disabling, database counts, the LLM limiter
and metrics, background work."""

from __future__ import annotations

from typing import Any

import llm
from app.errors import Conflict, NotFound
from app.services.memory import MemoryService
from app.services.runs import RunRegistry
from storage import Database, LastAdmin, stats, users
from storage.records import Counts, User, UserWithCounts


class AdminService:
    """What `/api/admin/*` shows and changes (callers check the caller is an admin)."""

    def __init__(
        self,
        db: Database,
        limiter: llm.LLMLimiter,
        metrics: llm.LLMMetrics,
        runs: RunRegistry,
        memory: MemoryService,
    ) -> None:
        self._db = db
        self._limiter = limiter
        self._metrics = metrics
        self._runs = runs
        self._memory = memory

    async def users(self) -> list[UserWithCounts]:
        """Every user with their number of characters and of messages in their conversations."""
        return await self._db.read(users.list_users_with_counts)

    async def update_user(
        self, user_id: int | None, *, disabled: bool | None, is_admin: bool | None
    ) -> User:
        """Change the flags; disabling revokes the user's tokens (same transaction).

        409 when it would disable or demote the last enabled admin."""
        user = None
        if user_id is not None:
            try:
                user = await self._db.write(
                    users.update_user, user_id, disabled=disabled, is_admin=is_admin
                )
            except LastAdmin as exc:
                raise Conflict(str(exc)) from None
        if user is None:
            raise NotFound("no such user")
        return user

    async def stats(self) -> Counts:
        return await self._db.read(stats.counts)

    def llm(self) -> dict[str, Any]:
        """`{"limiter": {"total","borrowed","waiting"}, "models": {model: metrics}}`."""
        return {"limiter": self._limiter.statistics(), "models": self._metrics.snapshot()}

    def resize(self, max_concurrency: int) -> dict[str, int]:
        """Resize the process-wide LLM limiter at once; returns the new limiter view."""
        self._limiter.resize(max_concurrency)
        return self._limiter.statistics()

    async def tasks(self) -> dict[str, Any]:
        """Background work: memory jobs (database-wide) and this process's running generations."""
        return {
            "memory": await self._memory.stats(),
            "generations": {"running": self._runs.running()},
        }
