"""Leases and stop flags of this process's generations, kept fresh by one poller task.

Each generation row in the database carries a lease owned by this process. One task renews all
of them at once and learns which ones another process asked to stop (`/chat/stop` may land on any
server process), so a thousand open streams cost one query a second, not a thousand.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from datetime import UTC, datetime

import trio
from sqlalchemy import Connection

from app.services.runs import Run
from storage import Database, StorageError, generations

log = logging.getLogger(__name__)


class GenerationTracker:
    """Maps this process's generation ids to their runs; renews leases, honours stop flags."""

    def __init__(
        self, db: Database, *, lease_seconds: float = 30.0, poll_interval: float = 1.0
    ) -> None:
        self._db = db
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self._runs: dict[int, Run] = {}

    def begin(self, conn: Connection, conversation_id: int) -> int | None:
        """Inside a write transaction: claim the conversation's one generation for this
        process (leased), or None while another one runs."""
        return generations.begin_generation(
            conn,
            conversation_id,
            owner=self.owner,
            lease_seconds=self.lease_seconds,
            now=datetime.now(UTC),
        )

    def track(self, generation_id: int, run: Run) -> None:
        self._runs[generation_id] = run

    def forget(self, generation_id: int) -> None:
        self._runs.pop(generation_id, None)

    async def poll_once(self) -> None:
        if not self._runs:
            return
        stopped = await self._db.write(
            generations.renew_owned,
            owner=self.owner,
            lease_seconds=self.lease_seconds,
            now=datetime.now(UTC),
            generation_ids=list(self._runs),
        )
        for generation_id in stopped:
            run = self._runs.get(generation_id)
            if run is not None:
                run.stop("stopped")

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(self.poll_interval)
            try:
                await self.poll_once()
            except StorageError:
                log.warning("could not renew generation leases; retrying", exc_info=True)
