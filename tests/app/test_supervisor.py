"""The generic supervisor: restarts with backoff, counts, degraded state, cancellation."""

from __future__ import annotations

import random
from typing import Any

import trio

from app.services.supervisor import Supervisor, SupervisorPolicy


def crashing(times: int, starts: list[float]) -> Any:
    """A worker that crashes `times` times, then runs forever; records start times."""

    async def worker() -> None:
        starts.append(trio.current_time())
        if len(starts) <= times:
            raise RuntimeError(f"crash {len(starts)}")
        await trio.sleep_forever()

    return worker


async def test_restarts_with_exponential_backoff(autojump_clock: Any) -> None:
    starts: list[float] = []
    sup = Supervisor("t", SupervisorPolicy(initial_backoff=1, max_backoff=4, jitter=0))
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run, {"w": crashing(4, starts)})
        await sup.wait_for(lambda: len(starts) == 5)
        nursery.cancel_scope.cancel()
    t0 = starts[0]
    assert [s - t0 for s in starts] == [0, 1, 3, 7, 11]  # 1, 2, 4, then capped at 4
    assert sup.restarts == 4
    assert sup.workers["w"].last_error == "RuntimeError: crash 4"


async def test_jitter_stays_within_bounds(autojump_clock: Any) -> None:
    policy = SupervisorPolicy(initial_backoff=2, max_backoff=100, jitter=0.5)
    rng = random.Random(7)
    for streak in range(1, 8):
        base = min(100, 2 * 2 ** (streak - 1))
        delays = {policy.backoff(streak, rng) for _ in range(20)}
        assert all(base <= d <= base * 1.5 for d in delays)
        assert len(delays) > 1


async def test_degraded_after_repeated_crashes_and_recovers(autojump_clock: Any) -> None:
    starts: list[float] = []
    policy = SupervisorPolicy(
        initial_backoff=0.1, max_backoff=1, jitter=0, degraded_after=5, stable_after=30
    )
    sup = Supervisor("t", policy)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run, {"ok": trio.sleep_forever, "bad": crashing(5, starts)})
        await sup.wait_for(lambda: sup.workers["bad"].streak == 4)
        assert sup.health()["status"] == "ok"
        await sup.wait_for(lambda: sup.workers["bad"].streak == 5)
        report = sup.health()
        assert report["status"] == "degraded"
        assert "bad crashed 5 times in a row" in report["reason"]
        assert "RuntimeError: crash 5" in report["reason"]
        # restarted once more, it now runs; still degraded until it has run `stable_after`
        await sup.wait_for(lambda: len(starts) == 6)
        assert sup.degraded
        await trio.sleep(29)
        assert sup.degraded
        await trio.sleep(1)
        assert sup.health()["status"] == "ok"
        assert sup.health()["restarts"] == 5
        nursery.cancel_scope.cancel()


async def test_a_long_run_resets_the_streak(autojump_clock: Any) -> None:
    runs = 0

    async def worker() -> None:
        nonlocal runs
        runs += 1
        await trio.sleep(100 if runs % 2 == 0 else 0)
        raise ValueError("boom")

    policy = SupervisorPolicy(initial_backoff=0.1, jitter=0, degraded_after=3, stable_after=50)
    sup = Supervisor("t", policy)
    streaks: list[int] = []

    def six_crashes() -> bool:
        streaks.append(sup.workers["w"].streak)
        return sup.workers["w"].crashes == 6

    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run, {"w": worker})
        await sup.wait_for(six_crashes)
        nursery.cancel_scope.cancel()
    # short and long (100 s > stable_after) runs alternate: a long run's crash starts a new
    # streak, so it never reaches 3 and the worker is never degraded
    assert max(streaks) == 2 and sup.workers["w"].streak == 1
    assert not sup.degraded


async def test_exception_group_is_a_crash_and_cancel_is_not(autojump_clock: Any) -> None:
    starts: list[float] = []

    async def worker() -> None:
        starts.append(trio.current_time())
        if len(starts) == 1:
            async with trio.open_nursery() as inner:
                inner.start_soon(trio.sleep_forever)
                raise KeyError("inner")
        await trio.sleep_forever()

    sup = Supervisor("t", SupervisorPolicy(initial_backoff=1, jitter=0))
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run, {"w": worker})
            await sup.wait_for(lambda: len(starts) == 2)
            scope.cancel()
    assert scope.cancelled_caught
    assert sup.restarts == 1 and sup.workers["w"].crashes == 1
    assert "ExceptionGroup" in (sup.workers["w"].last_error or "")


async def test_finished_worker_is_not_restarted(autojump_clock: Any) -> None:
    calls = 0

    async def once() -> None:
        nonlocal calls
        calls += 1

    sup = Supervisor("t")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sup.run, {"w": once})
    assert calls == 1 and sup.workers["w"].finished and sup.restarts == 0


class _Down(Exception):
    """A dependency is down."""


async def test_retry_now_restarts_backing_off_workers_and_progress_clears_degraded(
    autojump_clock: Any,
) -> None:
    down = True
    starts: list[float] = []
    sup = Supervisor(
        "t",
        SupervisorPolicy(
            initial_backoff=1, max_backoff=600, jitter=0, degraded_after=3, stable_after=60
        ),
    )

    async def needs_dependency() -> None:
        starts.append(trio.current_time())
        if down:
            raise _Down("dependency down")
        sup.mark_working("dep")
        await trio.sleep_forever()

    async def buggy() -> None:
        raise RuntimeError("a bug")

    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run, {"dep": needs_dependency, "bug": buggy})
        await sup.wait_for(lambda: sup.workers["dep"].streak == 8)  # next backoff: 128 s
        assert sup.degraded
        down = False
        t0 = trio.current_time()
        # only the workers that crashed with a matching error are restarted
        assert sup.retry_now(lambda error: issubclass(error, _Down)) == 1
        await sup.wait_for(lambda: not sup.workers["dep"].streak)
        assert starts[-1] == t0  # restarted at once, not after its backoff
        dep = sup.workers["dep"]
        assert dep.running and dep.backoff is None
        assert [w.name for w in sup.degraded_workers()] == ["bug"]  # still backing off
        assert sup.workers["bug"].backoff is not None
        nursery.cancel_scope.cancel()
