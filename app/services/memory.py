"""Memory compression: durable jobs, supervised workers (filled in by the memory issue)."""

from __future__ import annotations

from typing import Any

from storage import Database


class MemoryService:
    """Schedules compression of a conversation's old messages into memories."""

    def __init__(self, db: Database, *, trigger: int, keep_recent: int) -> None:
        self._db = db
        self.trigger = trigger
        self.keep_recent = keep_recent

    async def maybe_schedule(self, conversation_id: int) -> bool:
        """Enqueue compression when the uncompressed messages exceed the trigger."""
        return False

    async def schedule(self, conversation_id: int, *, force: bool = False) -> bool:
        """Enqueue compression now; False when one is already queued or nothing to do."""
        return False

    def health(self) -> dict[str, dict[str, Any]]:
        """Supervisor reports by name: {"status": "ok" | "degraded", ...}."""
        return {"memory_workers": {"status": "ok"}}
