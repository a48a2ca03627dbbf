"""One timer task per trio run for the fake's many short timed waits and paced writes.

`trio.sleep_until` opens a cancel scope with a deadline and wakes the sleeper by cancelling it:
a ``Cancelled`` raised and caught, cancel statuses recalculated, the scope torn down; then the
task is rescheduled and stepped. A stream paced at 50 tokens/s did that 50 times a second, so with
a thousand streams it was the largest share of the fake's CPU. Here a waiting task parks itself
(`trio.lowlevel.wait_task_rescheduled`) in one heap shared by the whole run, and a single timer
task, sleeping until the earliest due time with one cancel scope, fires whatever is due. Every job
due in the same tick shares one timer wake-up.

A job can do its timed work right in the timer task (`park`): a stream writes its keep-alive
comments and paced chunks from there, so its own task is not woken for each write (see
``llm.fake.chat._TimerWrites``). `sleep_until` is the plain case: the job just wakes its task.

Works with any clock, including trio's autojump clock in tests: the timer task's cancel scope
carries the earliest due time, so the clock jumps there.
"""

from __future__ import annotations

import heapq
import itertools
import math
from typing import Protocol

import outcome
import trio
from trio.lowlevel import Abort, RaiseCancelT, RunVar, Task


class TimedJob(Protocol):
    """Work the timer task does at ``due``, on behalf of a parked task."""

    due: float
    """When to `fire` next (by ``trio.current_time()``); read when the job is (re)queued."""

    def fire(self, now: float) -> bool:
        """Do the work due at ``now`` (``>= due``) without awaiting. True to fire again at the
        updated ``due``; False to wake the parked task (an exception wakes it with the error)."""
        ...


async def park(job: TimedJob) -> None:
    """Wait while the timer task fires ``job`` at each ``job.due``, until it asks to wake us.

    A checkpoint. If this task is cancelled meanwhile, ``job`` is not fired again. An exception
    escaping ``fire`` (a bug) is raised here rather than in the timer task.
    """
    await _timer().park(job)


async def sleep_until(deadline: float) -> None:
    """`trio.sleep_until`, cheaper: returns once ``trio.current_time() >= deadline``; a checkpoint
    even if the deadline has passed."""
    if deadline <= trio.current_time():
        await trio.lowlevel.checkpoint()
    else:
        await _timer().park(_Wake(deadline))


class _Wake:
    """The job of a plain sleep: wake the task when due."""

    __slots__ = ("due",)

    def __init__(self, due: float) -> None:
        self.due = due

    def fire(self, now: float) -> bool:
        return False


_TIMER: RunVar[_Timer] = RunVar("llm_fake_timer")
_MAX_STEP = 0.005
"""Seconds after which a timer step stops picking up jobs that fell due while it ran."""


def _timer() -> _Timer:
    try:
        return _TIMER.get()
    except LookupError:
        timer = _Timer()
        _TIMER.set(timer)
        # A system task: it lives as long as the trio run and needs no nursery from the caller.
        trio.lowlevel.spawn_system_task(timer.run, name="llm.fake.timer")
        return timer


class _Parked:
    """A queued job and the task waiting on it (``None`` once woken or cancelled)."""

    __slots__ = ("job", "task")

    def __init__(self, job: TimedJob, task: Task) -> None:
        self.job = job
        self.task: Task | None = task


class _Timer:
    def __init__(self) -> None:
        # (due, tie-breaker, entry): the tie-breaker keeps entries out of comparisons.
        self._heap: list[tuple[float, int, _Parked]] = []
        self._order = itertools.count()
        self._sleep: trio.CancelScope | None = None

    def _push(self, entry: _Parked) -> None:
        due = entry.job.due
        heapq.heappush(self._heap, (due, next(self._order), entry))
        sleep = self._sleep
        if sleep is not None and due < sleep.deadline:
            sleep.deadline = due  # wake the timer task earlier

    async def park(self, job: TimedJob) -> None:
        entry = _Parked(job, trio.lowlevel.current_task())
        self._push(entry)

        def abort(_: RaiseCancelT) -> Abort:
            entry.task = None  # dropped when it comes up in the heap
            return Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    async def run(self) -> None:
        heap = self._heap
        while True:
            self._fire_due()
            with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as sleep:
                self._sleep = sleep
                await trio.sleep_forever()
            self._sleep = None

    def _fire_due(self) -> None:
        heap = self._heap
        now = trio.current_time()
        # Firing takes time, so more may be due by the end: they are fired too (saving a timer
        # wake-up), but only for so long, so that an overloaded fake still lets its other tasks
        # (accepting connections, noticing disconnects) run. The jobs due at one ``now`` are a
        # bounded batch: each firing moves a job's due time forward.
        step_end = now + _MAX_STEP
        while heap:
            if heap[0][0] > now:
                now = trio.current_time()
                if heap[0][0] > now or now > step_end:
                    return
            entry = heapq.heappop(heap)[2]
            if entry.task is None:
                continue  # the parked task was cancelled
            try:
                again = entry.job.fire(now)
            except Exception as exc:  # a bug in a job: the parked task raises it
                self._wake(entry, outcome.Error(exc))
                continue
            if again:
                if entry.task is not None:  # else firing cancelled it (its client went away)
                    self._push(entry)
            else:
                self._wake(entry, outcome.Value(None))  # (an outcome can be unwrapped once)

    @staticmethod
    def _wake(entry: _Parked, result: outcome.Outcome[None]) -> None:
        task = entry.task
        if task is not None:  # else firing cancelled it (its client went away)
            entry.task = None
            trio.lowlevel.reschedule(task, result)
