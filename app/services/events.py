"""An append-only event log that any number of subscribers follow (broadcast, replayable).

A generation publishes into its log; HTTP requests only read it. A subscriber that falls behind
receives everything it missed in one batch, so a slow client never slows the producer and a fast
one gets each event as soon as it is published.
"""

from __future__ import annotations

from typing import Any

import trio

TERMINAL_EVENTS = frozenset({"done", "error"})

Event = tuple[str, dict[str, Any]]


class EventLog:
    """Events of one run; closed after its terminal event."""

    __slots__ = ("_events", "_changed", "closed")

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._changed = trio.Event()
        self.closed = False

    def publish(self, name: str, data: dict[str, Any]) -> None:
        if self.closed:
            raise RuntimeError(f"event {name!r} published after the terminal event")
        self._events.append((name, data))
        if name in TERMINAL_EVENTS:
            self.closed = True
        changed, self._changed = self._changed, trio.Event()
        changed.set()

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


def coalesce(batch: list[Event]) -> list[Event]:
    """Merge consecutive `delta` events of the same speaker into one (text concatenated)."""
    if len(batch) < 2:
        return batch
    out: list[Event] = []
    for name, data in batch:
        if name == "delta" and out:
            prev_name, prev = out[-1]
            if prev_name == "delta" and prev.get("character_id") == data.get("character_id"):
                merged = dict(prev)
                merged["text"] = prev["text"] + data["text"]
                out[-1] = ("delta", merged)
                continue
        out.append((name, data))
    return out
