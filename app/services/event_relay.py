"""Generations' events in Redis streams, so any server process can follow any generation.

The process that runs a generation publishes; any process serves followers. Each generation has
one stream, ``<prefix>:gen:<id>``, whose entry ``0-<i>`` is the event at index ``i`` of the run's
log (so its id is the same wherever it is read: ``base + i``), and a hash ``…:meta`` saying whose
generation it is (conversation, kind, character, where its reply goes), which lets another process
store the partial reply of a process that died. One task per process writes every pending event
of every generation in one pipelined round trip, then the next batch: publishing never waits on
Redis, and the batch grows with the load instead of the number of round trips. Streams are
bounded (``MAXLEN ~``) and expire `retention` seconds after their terminal event.

When Redis is lost the runs go on (their own process still serves their events); the publisher
waits for the link to come back and then writes each running generation's stream anew, whole.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import trio
from coredis import PureToken

from app.services.events import (
    TERMINAL_EVENTS,
    Event,
    EventLog,
    NumberedEvent,
    coalesce,
    generation_event_base,
)
from app.services.redis_link import REDIS_ERRORS, RedisLink

log = logging.getLogger(__name__)

MAX_STREAM_LENGTH = 20_000
RUNNING_TTL = 6 * 3600  # a stream whose publisher vanished goes away on its own

Meta = Mapping[str, str | int | None]


@dataclass
class _Published:
    log: EventLog
    meta: dict[str, str]
    sent: int = 0
    created: bool = False


@dataclass
class _Batch:
    gids: list[int] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)


class EventRelay:
    """Publishes this process's generations to Redis and opens followers of any generation."""

    def __init__(self, link: RedisLink, *, retention: float = 300.0) -> None:
        self.link = link
        self.retention = max(1, math.ceil(retention))
        self._logs: dict[int, _Published] = {}
        self._dirty: set[int] = set()
        self._wake = trio.Event()
        self.published = 0  # events written (for the benchmark's per-delta overhead)

    def stream_key(self, generation_id: int) -> str:
        return self.link.key("gen", generation_id)

    def meta_key(self, generation_id: int) -> str:
        return self.link.key("gen", generation_id, "meta")

    def attach(self, generation_id: int, events: EventLog, meta: Meta) -> None:
        """Publish `events` (from its first event on) as generation `generation_id`'s stream."""
        self._logs[generation_id] = _Published(
            events, {k: "" if v is None else str(v) for k, v in meta.items()}
        )
        events.on_publish = lambda _log: self._mark(generation_id)
        self._mark(generation_id)

    def _mark(self, generation_id: int) -> None:
        self._dirty.add(generation_id)
        self._wake.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            if not self.link.up:
                await self._wait_for_link()
            dirty, self._dirty = self._dirty, set()
            try:
                await self._flush(dirty)
            except REDIS_ERRORS as exc:
                self.link.lost(exc)
                self._dirty |= dirty
                self._wake.set()

    async def _wait_for_link(self) -> None:
        while not self.link.up:
            await self.link.wait_changed()
        # Redis may have lost what it held (it keeps nothing on disk): write every running
        # generation's stream anew. Those that ended meanwhile are stored; their followers were
        # told to follow again, and find them ended (204) and in the history.
        for gid, published in list(self._logs.items()):
            if published.log.closed:
                del self._logs[gid]
                continue
            published.sent = 0
            published.created = False
        self._dirty |= set(self._logs)

    async def _flush(self, dirty: set[int]) -> None:
        batch = _Batch()
        async with self.link.client.pipeline(transaction=False, raise_on_error=False) as pipe:
            for gid in dirty:
                published = self._logs.get(gid)
                if published is None:
                    continue
                key = self.stream_key(gid)
                events = published.log.events
                if not published.created:
                    pipe.delete([key, self.meta_key(gid)])
                    pipe.hset(self.meta_key(gid), published.meta)
                    pipe.expire(self.meta_key(gid), RUNNING_TTL)
                for index in range(published.sent, len(events)):
                    name, data = events[index]
                    pipe.xadd(
                        key,
                        {"e": name, "d": orjson.dumps(data)},
                        identifier=f"0-{index + 1}",
                        trim_strategy=PureToken.MAXLEN,
                        threshold=MAX_STREAM_LENGTH,
                        trim_operator=PureToken.APPROXIMATELY,
                    )
                if not published.created:
                    pipe.expire(key, RUNNING_TTL)
                if published.log.closed:
                    pipe.expire(key, self.retention)
                    pipe.expire(self.meta_key(gid), self.retention)
                batch.gids.append(gid)
                batch.counts.append(len(events))
        for gid, count in zip(batch.gids, batch.counts, strict=True):
            published = self._logs[gid]
            self.published += count - published.sent
            published.sent = count
            published.created = True
            if published.log.closed and published.sent == len(published.log.events):
                del self._logs[gid]

    async def meta(self, generation_id: int) -> dict[str, str]:
        raw = await self.link.client.hgetall(self.meta_key(generation_id))
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def read_all(self, generation_id: int) -> list[Event]:
        """Every event of the generation's stream (for a takeover), in order."""
        entries = await self.link.client.xrange(self.stream_key(generation_id))
        return [_event(entry.field_values) for entry in entries]

    async def has_events_after(self, generation_id: int, index: int) -> bool:
        entries = await self.link.client.xrange(
            self.stream_key(generation_id), start=f"0-{index + 1}", count=1
        )
        return bool(entries)

    async def append_terminal(self, generation_id: int, name: str, data: dict[str, Any]) -> None:
        """End a stream whose publisher died (its next id; nothing if it already ended)."""
        key = self.stream_key(generation_id)
        last = await self.link.client.xrevrange(key, count=1)
        if last and _event(last[0].field_values)[0] in TERMINAL_EVENTS:
            return
        index = _index(last[0].identifier) if last else 0
        await self.link.client.xadd(
            key, {"e": name, "d": orjson.dumps(data)}, identifier=f"0-{index + 1}"
        )
        await self.link.client.expire(key, self.retention)

    def follower(
        self, generation_id: int, after: int, *, alive: Callable[[], Awaitable[bool]]
    ) -> RedisSource:
        return RedisSource(self, generation_id, after, alive=alive)


def _event(fields: Mapping[str | bytes, str | bytes]) -> Event:
    name = fields[b"e"]
    return (name.decode() if isinstance(name, bytes) else name), orjson.loads(fields[b"d"])


def _index(identifier: bytes | str) -> int:
    text = identifier.decode() if isinstance(identifier, bytes) else identifier
    return int(text.partition("-")[2])


UNAVAILABLE = {
    "code": "events_unavailable",
    "message": "this generation's live events are unavailable (Redis lost); follow again shortly",
}
INTERRUPTED = {
    "code": "interrupted",
    "message": "the server process running this generation stopped; what it had written is "
    "stored as interrupted",
}


class RedisSource:
    """Follows a generation's stream from index `after` on (an `app.sse.EventSource`).

    Blocks in ``XREAD`` at most a second at a time; between reads it asks `alive` now and then
    whether the generation still runs, so a follower of a process that died without a terminal
    event ends with `error` ``interrupted`` (unless a takeover wrote one first)."""

    LIVENESS_EVERY = 2.0
    GRACE = 3.0  # after the row is gone, how long the terminal event may take to arrive

    def __init__(
        self,
        relay: EventRelay,
        generation_id: int,
        after: int,
        *,
        alive: Callable[[], Awaitable[bool]],
    ) -> None:
        self._relay = relay
        self._gid = generation_id
        self._base = generation_event_base(generation_id)
        self._last = after
        self._alive = alive
        self._finished = False
        self._checked = trio.current_time()
        self._gone_since: float | None = None

    def _end(self, data: dict[str, Any]) -> list[NumberedEvent]:
        self._finished = True
        return [(self._base + self._last + 1, "error", data)]

    async def next_batch(self, wait: float) -> list[NumberedEvent] | None:
        if self._finished:
            return None
        deadline = trio.current_time() + wait
        client = self._relay.link.client
        key = self._relay.stream_key(self._gid)
        while True:
            block = max(1, int(min(1.0, deadline - trio.current_time()) * 1000))
            try:
                found = await client.xread({key: f"0-{self._last}"}, count=1000, block=block)
            except REDIS_ERRORS as exc:
                self._relay.link.lost(exc)
                return self._end(UNAVAILABLE)
            entries = found.get(key.encode(), ()) if found else ()
            if entries:
                first = _index(entries[0].identifier)
                events = [_event(entry.field_values) for entry in entries]
                self._last = _index(entries[-1].identifier)
                if any(name in TERMINAL_EVENTS for name, _ in events):
                    self._finished = True
                return coalesce(events, self._base + first)
            now = trio.current_time()
            if now - self._checked >= self.LIVENESS_EVERY:
                self._checked = now
                if await self._alive():
                    self._gone_since = None
                elif self._gone_since is None:
                    self._gone_since = now
            if self._gone_since is not None and now - self._gone_since >= self.GRACE:
                return self._end(INTERRUPTED)
            if now >= deadline:
                return []
