"""A broadcast "something changed" signal that tasks wait on with a predicate."""

from __future__ import annotations

from collections.abc import Callable

import trio


class ChangeSignal:
    """`notify()` wakes every waiter; `wait_for(predicate)` re-checks after each change."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = trio.Event()

    def notify(self) -> None:
        event, self._event = self._event, trio.Event()
        event.set()

    def current(self) -> trio.Event:
        """The event the next `notify()` sets: take it before checking, then wait on it."""
        return self._event

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while True:
            changed = self._event
            if predicate():
                return
            await changed.wait()
