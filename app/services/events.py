"""An append-only event log that any number of subscribers follow (broadcast, replayable).

A generation publishes into its log; HTTP requests only read it. A subscriber that falls behind
receives everything it missed in one batch, so a slow client never slows the producer and a fast
one gets each event as soon as it is published.

Event ids are stable wherever a generation is followed from: the event at index ``i`` (1-based)
of a log has the id ``base + i``. A conversation's generation has ``base = generation_id ×
ID_SPAN`` (`generation_event_base`), so an id also names its generation: a client that resumes
with ``Last-Event-ID`` after that generation ended, or while another runs, is never handed the
wrong generation's events from the wrong place (`split_event_id`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import trio

TERMINAL_EVENTS = frozenset({"done", "error"})

# Events one generation may publish (ids are base + 1 … base + ID_SPAN - 1).
ID_SPAN = 1_000_000

Event = tuple[str, dict[str, Any]]
# (id, name, data): an event as a client sees it; coalesced deltas carry their last raw id.
NumberedEvent = tuple[int, str, dict[str, Any]]


def generation_event_base(generation_id: int) -> int:
    return generation_id * ID_SPAN


def split_event_id(event_id: int) -> tuple[int, int]:
    """``(generation_id, index)`` of an id from a generation's log (generation 0: none)."""
    return divmod(event_id, ID_SPAN)


class EventLog:
    """Events of one run; closed after its terminal event. `on_publish` (if set) is called
    after every event, e.g. to forward it to other processes."""

    __slots__ = ("_events", "_changed", "closed", "base", "on_publish")

    def __init__(self, base: int = 0) -> None:
        self._events: list[Event] = []
        self._changed = trio.Event()
        self.closed = False
        self.base = base
        self.on_publish: Callable[[EventLog], None] | None = None

    def publish(self, name: str, data: dict[str, Any]) -> None:
        if self.closed:
            raise RuntimeError(f"event {name!r} published after the terminal event")
        self._events.append((name, data))
        if name in TERMINAL_EVENTS:
            self.closed = True
        changed, self._changed = self._changed, trio.Event()
        changed.set()
        if self.on_publish is not None:
            self.on_publish(self)

    @property
    def events(self) -> list[Event]:
        return self._events

    async def wait_from(self, cursor: int) -> list[Event]:
        """Events from index `cursor` on, waiting until there is at least one.

        Returns an empty list only when the log is closed and the cursor is at its end.
        """
        while cursor >= len(self._events):
            if self.closed:
                return []
            await self._changed.wait()
        return self._events[cursor:]


def coalesce(batch: list[Event], first_id: int) -> list[NumberedEvent]:
    """Number `batch` (its first event has id `first_id`) and merge consecutive `delta` events
    of the same speaker into one (text concatenated, the id of the last one merged)."""
    out: list[NumberedEvent] = []
    event_id = first_id - 1
    for name, data in batch:
        event_id += 1
        if name == "delta" and out:
            prev_id, prev_name, prev = out[-1]
            if prev_name == "delta" and prev.get("character_id") == data.get("character_id"):
                merged = dict(prev)
                merged["text"] = prev["text"] + data["text"]
                out[-1] = (event_id, "delta", merged)
                continue
        out.append((event_id, name, data))
    return out


class EventSource(Protocol):
    """Where a stream's events come from: a run's log here, or another process's via Redis."""

    async def next_batch(self, wait: float) -> list[NumberedEvent] | None:
        """The events after those already returned, waiting up to `wait` seconds for one:
        ``[]`` when none came in time, None once the terminal event has been returned."""
        ...


class LogSource:
    """A run's `EventLog` in this process, from index `cursor` on."""

    def __init__(self, log: EventLog, cursor: int = 0) -> None:
        self._log = log
        self._cursor = cursor

    async def next_batch(self, wait: float) -> list[NumberedEvent] | None:
        batch = None
        with trio.move_on_after(wait):
            batch = await self._log.wait_from(self._cursor)
        if batch is None:
            return []
        if not batch:
            return None
        first = self._log.base + self._cursor + 1
        self._cursor += len(batch)
        return coalesce(batch, first)
