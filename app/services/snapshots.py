"""Prompt snapshots for admins: the exact prompt behind a reply, kept
``FASTNPC_PROMPT_SNAPSHOT_DAYS`` days (0 keeps none), then gone; a background task deletes
expired ones every hour."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import trio
from sqlalchemy import Connection

from app.errors import NotFound
from storage import Database, StorageError, prompt_snapshots
from storage.prompt_snapshots import PromptSnapshot

log = logging.getLogger(__name__)

PURGE_INTERVAL = 3600.0


class PromptSnapshots:
    """Record (inside a reply's save transaction), read, and expire prompt snapshots."""

    def __init__(self, db: Database, *, days: int) -> None:
        self._db = db
        self.days = days

    def record_prompt(
        self,
        conn: Connection,
        message_id: int,
        prompt: Sequence[Mapping[str, Any]],
        model: str,
    ) -> None:
        """Keep ``prompt`` for assistant message ``message_id`` (nothing when days is 0).
        Call inside the transaction that saves the message."""
        if self.days > 0:
            prompt_snapshots.record_prompt(conn, message_id, prompt, model)

    def _cutoff(self) -> datetime:
        return datetime.now(UTC) - timedelta(days=self.days)

    async def get(self, message_id: int | None) -> PromptSnapshot:
        """The snapshot of that message while it is kept; 404 otherwise."""
        snapshot = None
        if message_id is not None and self.days > 0:
            snapshot = await self._db.read(
                prompt_snapshots.get_prompt, message_id, since=self._cutoff()
            )
        if snapshot is None:
            raise NotFound("no prompt snapshot for that message")
        return snapshot

    async def purge(self) -> int:
        """Delete the expired snapshots now; how many."""
        return await self._db.write(prompt_snapshots.delete_older_than, self._cutoff())

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Purge expired snapshots at start and every hour until cancelled."""
        task_status.started()
        while True:
            try:
                deleted = await self.purge()
                if deleted:
                    log.info("deleted %d expired prompt snapshots", deleted)
            except StorageError as exc:
                log.warning("expired prompt snapshots not deleted: %s", exc)
            await trio.sleep(PURGE_INTERVAL)
