"""Following a conversation's generation from any process, resuming after ``Last-Event-ID``.

Where the events come from, in order of preference:

1. this process's log of the generation the client was following (running, or ended within
   `lifecycle.RECENT_SECONDS`), from just after its last event;
2. this process's running generation of the conversation, from its start;
3. with Redis: the generation's stream — the one the client was following if it still has
   events after its id, else the conversation's running generation (from the database) —
   whichever process runs it.

Nothing to follow (nothing runs, or it runs in another process and there is no Redis) → None:
the route answers 204 and the client reads the stored messages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from app.services.event_relay import UNAVAILABLE, EventRelay
from app.services.events import EventSource, LogSource, NumberedEvent, split_event_id
from app.services.lifecycle import GenerationLifecycle
from app.services.redis_link import REDIS_ERRORS
from storage import Database, StorageError, generations
from storage.timestamps import utcnow


class ErrorSource:
    """A follower that can only be told why it cannot follow: one terminal `error`."""

    def __init__(self, last_event_id: int, error: dict[str, Any]) -> None:
        self._event: NumberedEvent | None = (last_event_id + 1, "error", error)

    async def next_batch(self, wait: float) -> list[NumberedEvent] | None:
        event, self._event = self._event, None
        return None if event is None else [event]


class FollowService:
    def __init__(self, db: Database, lifecycle: GenerationLifecycle) -> None:
        self._db = db
        self._lifecycle = lifecycle

    @property
    def _relay(self) -> EventRelay | None:
        return self._lifecycle.relay

    async def source(self, conversation_id: int, last_event_id: int | None) -> EventSource | None:
        """What to relay to a follower of the conversation, or None when nothing runs."""
        wanted, index = split_event_id(last_event_id) if last_event_id else (0, 0)
        if wanted:
            local = self._lifecycle.event_log(conversation_id, wanted)
            if local is not None and (index < len(local.events) or not local.closed):
                return LogSource(local, index)
        running = self._lifecycle.running_generation(conversation_id)
        if running is not None:
            gid, run = running
            return LogSource(run.events, index if gid == wanted else 0)
        relay = self._relay
        if relay is None:
            return None
        active = await self._db.read(
            generations.active_generation, conversation_id, now=utcnow()
        )
        if active is None and not wanted:
            return None
        try:
            if wanted and wanted != active and await relay.has_events_after(wanted, index):
                return relay.follower(wanted, index, alive=self._alive(wanted))
        except REDIS_ERRORS as exc:
            relay.link.lost(exc)
            return ErrorSource(last_event_id or 0, UNAVAILABLE)
        if active is None:
            return None
        return relay.follower(active, index if active == wanted else 0, alive=self._alive(active))

    def _alive(self, generation_id: int) -> Callable[[], Awaitable[bool]]:
        async def alive() -> bool:
            try:
                return await self._db.read(
                    generations.generation_alive, generation_id, now=utcnow()
                )
            except StorageError:
                return True  # the database is down, not necessarily the generation
        return alive
