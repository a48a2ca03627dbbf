"""Generations' events in Redis streams, so any server process can follow any generation.

The process that runs a generation publishes; any process serves followers. Each generation has
one stream, ``<prefix>:gen:<id>``, whose entry ``0-<i>`` is the event at index ``i`` of the run's
log (so its id is the same wherever it is read: ``base + i``), and a hash ``…:meta`` saying whose
generation it is (conversation, kind, character, where its reply goes), which lets another process
store the partial reply of a process that died. One task per process writes every pending event
of every generation in one Lua script call (one round trip; Redis runs the XADDs), then the next
batch: publishing never waits on Redis, and the batch grows with the load instead of the number
of round trips. One command per batch instead of one per event: 6–8 µs of the publishing
process's CPU per event instead of 50–63 (`python -m bench.relay_bench`). Streams are
bounded (``MAXLEN ~``) and expire `retention` seconds after their terminal event.

When Redis is lost the runs go on (their own process still serves their events); the publisher
waits for the link to come back and then writes each running generation's stream anew, whole.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import trio

from app.services.events import (
    TERMINAL_EVENTS,
    Event,
    EventLog,
    NumberedEvent,
    coalesce,
    generation_event_base,
)
from app.services.redis_link import LINK_ERRORS, REDIS_ERRORS, RedisLink

log = logging.getLogger(__name__)

MAX_STREAM_LENGTH = 20_000
RUNNING_TTL = 6 * 3600  # a stream whose publisher vanished goes away on its own
SCRIPT_BATCH = 30_000  # arguments per script call
_CREATE, _CLOSED = 1, 2

# One call writes a batch of generations' new events. KEYS: stream and meta key of each
# generation. ARGV: MAXLEN, running TTL, retention, then per generation: its event count, its
# flags (1: new — the stream and meta are written anew; 2: ended — both expire after the
# retention), for a new one the meta's field count and fields, then (index, name, data) per
# event, written as entry 0-<index>. An entry Redis refuses (its id is not above the stream's
# last, e.g. after a takeover ended the stream) is skipped.
_PUBLISH = """
local maxlen, running_ttl, retention = ARGV[1], ARGV[2], ARGV[3]
local pos = 4
for i = 1, #KEYS, 2 do
  local stream, meta = KEYS[i], KEYS[i + 1]
  local count, flags = tonumber(ARGV[pos]), tonumber(ARGV[pos + 1])
  pos = pos + 2
  local new, ended = flags % 2 == 1, flags >= 2
  if new then
    redis.call('DEL', stream, meta)
    local fields = tonumber(ARGV[pos])
    pos = pos + 1
    for f = 0, fields - 1 do
      redis.call('HSET', meta, ARGV[pos + 2 * f], ARGV[pos + 2 * f + 1])
    end
    pos = pos + 2 * fields
  end
  for e = 1, count do
    redis.pcall('XADD', stream, 'MAXLEN', '~', maxlen, '0-' .. ARGV[pos], 'e', ARGV[pos + 1],
      'd', ARGV[pos + 2])
    pos = pos + 3
  end
  if ended then
    redis.call('EXPIRE', stream, retention)
    redis.call('EXPIRE', meta, retention)
  elseif new then
    redis.call('EXPIRE', stream, running_ttl)
    redis.call('EXPIRE', meta, running_ttl)
  end
end
return 1
"""

Meta = Mapping[str, str | int | None]


@dataclass
class _Published:
    log: EventLog
    meta: dict[str, str]
    sent: int = 0
    created: bool = False


class EventRelay:
    """Publishes this process's generations to Redis and opens followers of any generation."""

    def __init__(self, link: RedisLink, *, retention: float = 300.0) -> None:
        self.link = link
        self.retention = max(1, math.ceil(retention))
        self._logs: dict[int, _Published] = {}
        self._dirty: set[int] = set()
        self._wake = trio.Event()
        self._idle = trio.Event()  # set while every event has been written
        self._idle.set()
        self.flushes = 0  # batches written, one round trip each (bench/relay_bench.py)
        self._script = link.client.register_script(_PUBLISH)

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
        if self._idle.is_set():
            self._idle = trio.Event()
        self._wake.set()

    async def wait_idle(self) -> None:
        """Return once every event published so far has been written to Redis."""
        await self._idle.wait()

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
            except LINK_ERRORS as exc:  # written again once the link is back
                self.link.lost(exc)
                self._dirty |= dirty
                self._wake.set()
            except REDIS_ERRORS as exc:  # this batch's own failure: retrying would loop
                log.error("relay: events of %d generations not published: %r", len(dirty), exc)
                self._skip(dirty)
                if not self._dirty:
                    self._idle.set()
            else:
                self.flushes += 1
                if not self._dirty:
                    self._idle.set()

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

    def _skip(self, dirty: set[int]) -> None:
        """Count the `dirty` generations' events as written (their followers in other processes
        miss them; those here read the log); a closed one is forgotten."""
        for gid in dirty:
            published = self._logs.get(gid)
            if published is None:
                continue
            published.sent = len(published.log.events)
            if published.log.closed:
                del self._logs[gid]

    async def _flush(self, dirty: set[int]) -> None:
        """Write the new events of the `dirty` generations: one script call (one round trip)
        carries them all, up to `SCRIPT_BATCH` arguments a call."""
        calls: list[tuple[list[str], list[bytes | str | int]]] = []
        keys: list[str] = []
        args: list[bytes | str | int] = []
        written: list[tuple[int, int]] = []
        for gid in dirty:
            published = self._logs.get(gid)
            if published is None:
                continue
            events = published.log.events
            keys += [self.stream_key(gid), self.meta_key(gid)]
            flags = (0 if published.created else _CREATE) | (_CLOSED if published.log.closed else 0)
            args += [len(events) - published.sent, flags]
            if not published.created:
                args.append(len(published.meta))
                for name, value in published.meta.items():
                    args += [name, value]
            for index in range(published.sent, len(events)):
                name, data = events[index]
                args += [index + 1, name, orjson.dumps(data)]
            written.append((gid, len(events)))
            if len(args) >= SCRIPT_BATCH:
                calls.append((keys, args))
                keys, args = [], []
        if keys:
            calls.append((keys, args))
        head = [MAX_STREAM_LENGTH, RUNNING_TTL, self.retention]
        for call_keys, call_args in calls:  # more than one only past SCRIPT_BATCH arguments
            await self._script(keys=call_keys, args=[*head, *call_args])
        for gid, count in written:
            published = self._logs[gid]
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
