"""Administration: users with their counts, enabling/disabling, database counts, the LLM limiter
and metrics, background work."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

import llm
from app.errors import Conflict, NotFound
from app.services.auth import TokenCache
from app.services.memory import MemoryService
from app.services.runs import RunRegistry
from storage import Database, LastAdmin, stats, user_settings, users
from storage.records import Counts, User, UserWithCounts


class AdminService:
    """What `/api/admin/*` shows and changes (callers check the caller is an admin)."""

    def __init__(
        self,
        db: Database,
        limiter: llm.Limiter,
        metrics: llm.LLMMetrics,
        runs: RunRegistry,
        memory: MemoryService,
        tokens: TokenCache,
    ) -> None:
        self._db = db
        self._tokens = tokens
        self._limiter = limiter
        self._metrics = metrics
        self._runs = runs
        self._memory = memory

    async def users(self) -> list[UserWithCounts]:
        """Every user with their number of characters and of messages in their conversations."""
        return await self._db.read(users.list_users_with_counts)

    async def update_user(
        self,
        user_id: int | None,
        *,
        disabled: bool | None,
        is_admin: bool | None,
        monthly_token_quota: int | None = user_settings.UNCHANGED,
    ) -> tuple[User, int | None]:
        """Change the flags and the quota (``UNCHANGED`` keeps it); disabling revokes the
        user's tokens (same transaction). The user and their quota.

        409 when it would disable or demote the last enabled admin."""

        def update(conn: Connection, uid: int) -> tuple[User, int | None] | None:
            user = users.update_user(conn, uid, disabled=disabled, is_admin=is_admin)
            if user is None:
                return None
            settings = user_settings.set_settings(
                conn, uid, monthly_token_quota=monthly_token_quota
            )
            return user, settings.monthly_token_quota

        result = None
        if user_id is not None:
            try:
                result = await self._db.write(update, user_id)
            except LastAdmin as exc:
                raise Conflict(str(exc)) from None
        if result is None:
            raise NotFound("no such user")
        self._tokens.forget_user(result[0].id)  # disabled, or no longer (or newly) an admin
        return result

    async def stats(self) -> Counts:
        return await self._db.read(stats.counts)

    async def llm(self) -> dict[str, Any]:
        """`{"limiter": {"total","borrowed","waiting"}, "models": {model: metrics}}`: the
        limiter service-wide when it is shared (Redis), the metrics of this process."""
        return {"limiter": await self._limiter.statistics(), "models": self._metrics.snapshot()}

    async def resize(self, max_concurrency: int) -> dict[str, int]:
        """Resize the LLM limiter at once (service-wide when shared); the new limiter view."""
        await self._limiter.resize(max_concurrency)
        return await self._limiter.statistics()

    async def tasks(self) -> dict[str, Any]:
        """Background work: memory jobs (database-wide) and this process's running generations."""
        return {
            "memory": await self._memory.stats(),
            "generations": {"running": self._runs.running()},
        }
