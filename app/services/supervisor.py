"""Supervision of long-running background workers (DESIGN idiom 11).

A `Supervisor` runs named workers (async functions that normally run forever) in its own
nursery. When one raises an `Exception` it is restarted after an exponential backoff with
jitter, and the restart is counted. A worker that keeps crashing — `degraded_after` crashes in a
row, each after running less than `stable_after` seconds — makes the supervisor *degraded*
(readiness reports it, with the last error as the reason); the app keeps running and the worker
keeps being restarted. It is healthy again once it has run `stable_after` seconds since its last
restart, or as soon as it reports progress (`mark_working`: e.g. its first database call
succeeded), which ends its crash streak.

Workers that crashed because a dependency was down back off for up to `max_backoff`; when the
dependency answers again, `retry_now` restarts the ones waiting out such a crash at once, so that
the service (and readiness) follows the dependency within moments, not a backoff later.

Cancellation is never caught: `trio.Cancelled` is a `BaseException`, and a `BaseExceptionGroup`
holding one is not an `Exception` either, so both propagate and the supervisor stops with its
nursery. A worker that returns normally is finished and is not restarted.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from app.services.changes import ChangeSignal

log = logging.getLogger(__name__)

WorkerFn = Callable[[], Awaitable[None]]


@dataclass
class SupervisorPolicy:
    """Restart backoff and the degraded threshold (read at each crash: may change live)."""

    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    jitter: float = 0.5
    """Each delay is multiplied by a random factor in [1, 1 + jitter]."""
    degraded_after: int = 5
    stable_after: float = 60.0
    """A run at least this long resets the crash streak and clears degraded."""

    def backoff(self, streak: int, rng: random.Random) -> float:
        """The delay before restarting after the `streak`-th crash in a row (streak >= 1)."""
        base = min(self.max_backoff, self.initial_backoff * 2 ** max(0, streak - 1))
        return float(base * (1 + self.jitter * rng.random()))


@dataclass
class WorkerState:
    """What the supervisor knows about one worker."""

    name: str
    running: bool = False
    started_at: float | None = None
    restarts: int = 0
    crashes: int = 0
    streak: int = 0
    """Crashes in a row, each after a run shorter than `stable_after`."""
    last_error: str | None = None
    last_error_type: type[BaseException] | None = None
    finished: bool = False
    backoff: trio.CancelScope | None = field(default=None, repr=False)
    """The scope of the backoff wait before the next restart, while the worker waits it out."""


@dataclass
class Supervisor:
    """Runs and restarts workers; counts restarts; reports `ok` or `degraded`."""

    name: str
    policy: SupervisorPolicy = field(default_factory=SupervisorPolicy)
    rng: random.Random = field(default_factory=random.Random)
    workers: dict[str, WorkerState] = field(default_factory=dict)
    _changes: ChangeSignal = field(default_factory=ChangeSignal, repr=False)

    @property
    def restarts(self) -> int:
        """Restarts of all workers since the supervisor started."""
        return sum(w.restarts for w in self.workers.values())

    def degraded_workers(self) -> list[WorkerState]:
        """Workers currently considered degraded."""
        now = trio.current_time()
        return [w for w in self.workers.values() if self._is_degraded(w, now)]

    def _is_degraded(self, worker: WorkerState, now: float) -> bool:
        if worker.streak < self.policy.degraded_after:
            return False
        stable = (
            worker.running
            and worker.started_at is not None
            and now - worker.started_at >= self.policy.stable_after
        )
        return not stable

    @property
    def degraded(self) -> bool:
        return bool(self.degraded_workers())

    def health(self) -> dict[str, Any]:
        """`{"status": "ok"|"degraded", "workers", "running", "restarts", "reason"?}`."""
        report: dict[str, Any] = {
            "status": "ok",
            "workers": len(self.workers),
            "running": sum(1 for w in self.workers.values() if w.running),
            "restarts": self.restarts,
        }
        bad = self.degraded_workers()
        if bad:
            report["status"] = "degraded"
            report["reason"] = "; ".join(
                f"{w.name} crashed {w.streak} times in a row (last: {w.last_error})" for w in bad
            )
        return report

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until `predicate()` holds; re-checked whenever a worker starts or crashes."""
        await self._changes.wait_for(predicate)

    def mark_working(self, name: str) -> None:
        """Worker `name` made progress: its crash streak ends (so it is no longer degraded)."""
        worker = self.workers[name]
        if worker.streak:
            worker.streak = 0
            self._notify()

    def retry_now(self, crashed_with: Callable[[type[BaseException]], bool]) -> int:
        """Restart now the workers waiting out a backoff after a crash whose exception type
        satisfies `crashed_with`; returns how many."""
        woken = 0
        for worker in self.workers.values():
            scope, error = worker.backoff, worker.last_error_type
            if scope is not None and error is not None and crashed_with(error):
                scope.cancel()
                woken += 1
        return woken

    def _notify(self) -> None:
        self._changes.notify()

    async def run(
        self,
        workers: Mapping[str, WorkerFn],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Supervise `workers` (name → function) until cancelled or all of them return."""
        async with trio.open_nursery() as nursery:
            for name, fn in workers.items():
                self.workers[name] = WorkerState(name)
                nursery.start_soon(self._supervise, self.workers[name], fn)
            task_status.started()

    async def _supervise(self, worker: WorkerState, fn: WorkerFn) -> None:
        while True:
            worker.running = True
            worker.started_at = trio.current_time()
            self._notify()
            try:
                await fn()
            except Exception as exc:
                ran = trio.current_time() - worker.started_at
                worker.running = False
                worker.crashes += 1
                worker.streak = worker.streak + 1 if ran < self.policy.stable_after else 1
                worker.last_error = f"{type(exc).__name__}: {exc}"
                worker.last_error_type = type(exc)
                log.error(
                    "%s: worker %s crashed (%d in a row)",
                    self.name,
                    worker.name,
                    worker.streak,
                    exc_info=exc,
                )
                self._notify()
            else:
                worker.running = False
                worker.finished = True
                self._notify()
                return
            with trio.CancelScope() as worker.backoff:  # `retry_now` cuts it short
                await trio.sleep(self.policy.backoff(worker.streak, self.rng))
            worker.backoff = None
            worker.restarts += 1
