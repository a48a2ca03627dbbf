"""Ending the generations of server processes that died, from any other process.

A process that is killed mid-generation leaves its generation row behind; the row's lease runs
out (``FASTNPC_GENERATION_LEASE_SECONDS``). Every process looks for such rows once a second. With
Redis, each process also keeps a heartbeat key while it lives, and a row is taken over only when
its owner's heartbeat is gone too — a process that merely lost the database keeps its
generations (its spool saves them). Taking over: read what the dead process had relayed (its
generation's Redis stream), store each speaker's unfinished reply as ``interrupted`` and end the
row in one transaction (exactly one process wins it), then end the stream with `error`
``interrupted`` so its followers on every process stop waiting.

Without Redis nothing of the reply is left anywhere: the row is simply ended (as
`begin_generation` would when the conversation is next used).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import trio
from sqlalchemy import Connection

from app.services.event_relay import INTERRUPTED, EventRelay
from app.services.events import TERMINAL_EVENTS, Event
from app.services.redis_link import REDIS_ERRORS
from app.services.spool import PendingMessage, SpoolEntry, store_entry
from storage import Database, StorageError, generations
from storage.timestamps import utcnow

log = logging.getLogger(__name__)

# Events saying a speaker's reply was stored (or kept for storing) by the process that ran it.
_SAVED = frozenset({"reply", "reply_kept"})


def partial_replies(meta: Mapping[str, str], events: Sequence[Event]) -> list[PendingMessage]:
    """The unfinished replies in a dead process's relayed `events`, to store `interrupted`:
    one per speaker that had text and no saved reply, in the order they began. Nothing when the
    stream reached its terminal event (its process saved or kept everything)."""
    if not meta.get("conversation_id") or any(name in TERMINAL_EVENTS for name, _ in events):
        return []
    default_speaker = _int(meta.get("character_id"))
    texts: dict[int | None, list[str]] = {}
    saved: set[int | None] = set()
    for name, data in events:
        speaker = _int(data.get("character_id")) or default_speaker
        if name == "delta":
            texts.setdefault(speaker, []).append(str(data.get("text", "")))
        elif name in _SAVED:
            saved.add(speaker)
    parent_id: int | Literal["active_leaf"] = _int(meta.get("parent_id")) or "active_leaf"
    now = utcnow()
    return [
        PendingMessage(
            int(meta["conversation_id"]),
            "assistant",
            "".join(parts),
            speaker,
            "interrupted",
            now,
            meta.get("model") or None,
            parent_id if len(texts) == 1 else "active_leaf",
        )
        for speaker, parts in texts.items()
        if speaker not in saved and "".join(parts)
    ]


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


class Takeover:
    """One task per process: heartbeat (with Redis), and takeover of dead processes' rows."""

    def __init__(
        self,
        db: Database,
        relay: EventRelay | None,
        *,
        owner: str,
        lease_seconds: float,
        interval: float = 1.0,
    ) -> None:
        self._db = db
        self._relay = relay
        self._owner = owner
        self._lease = lease_seconds
        self.interval = interval
        self.taken = 0

    def _heartbeat_key(self, owner: str) -> str:
        assert self._relay is not None
        return self._relay.link.key("proc", owner)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self._heartbeat()
        task_status.started()
        while True:
            await trio.sleep(self.interval)
            await self._heartbeat()
            try:
                await self.sweep_once()
            except StorageError:
                log.warning("could not look for dead processes' generations", exc_info=True)

    async def _heartbeat(self) -> None:
        if self._relay is None or not self._relay.link.up:
            return
        ttl = max(2, round(self._lease))
        try:
            await self._relay.link.client.set(self._heartbeat_key(self._owner), b"1", ex=ttl)
        except REDIS_ERRORS as exc:
            self._relay.link.lost(exc)

    async def sweep_once(self) -> None:
        expired = await self._db.read(generations.expired_generations, now=utcnow())
        for generation_id, owner in expired:
            if owner == self._owner:
                continue  # ours: our own lifecycle (or spool) ends it
            await self._take(generation_id, owner)

    async def _take(self, generation_id: int, owner: str) -> None:
        pending: list[PendingMessage] = []
        relay = self._relay
        if relay is not None:
            if not relay.link.up:
                return  # cannot tell whether its owner lives, nor read its reply: later
            try:
                if await relay.link.client.exists([self._heartbeat_key(owner)]):
                    return  # alive, only cut off from the database
                pending = partial_replies(
                    await relay.meta(generation_id), await relay.read_all(generation_id)
                )
            except REDIS_ERRORS as exc:
                relay.link.lost(exc)
                return

        def take(conn: Connection) -> bool:
            if generations.take_over_expired(conn, generation_id, now=utcnow()) is None:
                return False
            store_entry(conn, SpoolEntry(pending))
            return True

        if not await self._db.write(take):
            return
        self.taken += 1
        log.warning(
            "generation %d of %s taken over: its process stopped (%d partial repl%s stored)",
            generation_id,
            owner,
            len(pending),
            "y" if len(pending) == 1 else "ies",
        )
        if relay is not None:
            try:
                await relay.append_terminal(generation_id, "error", dict(INTERRUPTED))
            except REDIS_ERRORS as exc:
                relay.link.lost(exc)
