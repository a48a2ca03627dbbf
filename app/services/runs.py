"""Generations run as tasks in the service nursery; requests only subscribe to their events.

A `Run` owns an `EventLog` and a cancel scope. `RunRegistry.start` starts the work in the
service nursery, so a client that disconnects ends only its subscription. Every run's log ends
with exactly one terminal event (`done` or `error`), whatever happens to the work.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

import trio

from app.error_info import describe
from app.services.events import EventLog

log = logging.getLogger(__name__)


class Run:
    """One unit of work (a chat reply, a group turn, a character generation)."""

    def __init__(self, key: Hashable, *, event_base: int = 0) -> None:
        self.key = key
        self.events = EventLog(event_base)
        self.cancel_scope = trio.CancelScope()
        self.finished = trio.Event()
        self.stop_reason: str | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        self.error_extra: dict[str, Any] = {}

    def publish(self, name: str, data: dict[str, Any]) -> None:
        self.events.publish(name, data)

    def stop(self, reason: str) -> None:
        """Cancel the work. The body runs inside `cancel_scope` and stores what it had."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self.cancel_scope.cancel()

    async def wait(self) -> Any:
        """Wait for the work to finish; return its result or raise its error."""
        await self.finished.wait()
        if self.error is not None:
            raise self.error
        return self.result


RunBody = Callable[[Run], Awaitable[Any]]


class RunRegistry:
    """The runs of this process, by key (e.g. ("chat", conversation_id))."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self._runs: dict[Hashable, Run] = {}
        self._idle = trio.Event()
        self._idle.set()

    def running(self, kind: str | None = None) -> int:
        if kind is None:
            return len(self._runs)
        return sum(1 for k in self._runs if isinstance(k, tuple) and k[0] == kind)

    def start(self, key: Hashable, body: RunBody, *, event_base: int = 0) -> Run:
        """Start `body(run)` in the service nursery and return the run at once (its event ids
        start after `event_base`). The body starts at the caller's next checkpoint."""
        if key in self._runs:
            raise RuntimeError(f"run {key!r} already in progress")
        run = Run(key, event_base=event_base)
        self._runs[key] = run
        if self._idle.is_set():
            self._idle = trio.Event()
        self._nursery.start_soon(self._execute, run, body)
        return run

    async def _execute(self, run: Run, body: RunBody) -> None:
        returned = False
        try:
            run.result = await body(run)
            returned = True
        except Exception as exc:  # the run's failure belongs to its subscribers, not the nursery
            run.error = exc
            if describe(exc).code == "internal_error":
                log.exception("run %r failed", run.key, exc_info=exc)
        finally:
            self._runs.pop(run.key, None)
            if not self._runs:
                self._idle.set()
            if not run.events.closed:
                # Cancelled from outside (the service nursery closing at shutdown) is never
                # `done`: the work did not finish.
                if run.stop_reason == "shutting_down" or (not returned and run.error is None):
                    run.publish(
                        "error",
                        {"code": "shutting_down", "message": "the server is shutting down"}
                        | run.error_extra,
                    )
                elif run.error is not None:
                    run.publish("error", describe(run.error).event() | run.error_extra)
                else:
                    run.publish("done", {})
            run.finished.set()

    async def wait_idle(self) -> None:
        """Return once no run is in progress."""
        await self._idle.wait()

    def stop_all(self, reason: str) -> None:
        for run in list(self._runs.values()):
            run.stop(reason)
