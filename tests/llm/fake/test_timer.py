"""The shared timer task behind the fake's sleeps and paced writes (trio's autojump clock)."""

from __future__ import annotations

import pytest
import trio

from llm.fake.timer import park, sleep_until


class Ticks:
    """A job firing every 0.25 s, ``count`` times; remembers when it fired."""

    def __init__(self, count: int, fail_at: int | None = None) -> None:
        self.due = trio.current_time() + 0.25
        self.left = count
        self.fail_at = fail_at
        self.fired: list[float] = []

    def fire(self, now: float) -> bool:
        assert now >= self.due
        self.fired.append(now)
        if len(self.fired) == self.fail_at:
            raise ValueError("a bug in a job")
        self.left -= 1
        self.due += 0.25
        return self.left > 0


async def test_sleepers_wake_at_their_deadlines_in_order(autojump_clock: trio.abc.Clock) -> None:
    start = trio.current_time()
    woke: list[tuple[float, float]] = []

    async def sleeper(delay: float) -> None:
        await sleep_until(start + delay)
        woke.append((delay, trio.current_time() - start))

    async with trio.open_nursery() as nursery:
        for delay in (0.3, 0.1, 0.2, 0.15, -1.0):
            nursery.start_soon(sleeper, delay)
    assert [d for d, _ in woke] == [-1.0, 0.1, 0.15, 0.2, 0.3]
    assert all(at == max(delay, 0.0) for delay, at in woke)


async def test_a_past_deadline_is_still_a_checkpoint(autojump_clock: trio.abc.Clock) -> None:
    with trio.CancelScope() as scope:
        scope.cancel()
        await sleep_until(trio.current_time() - 1)
    assert scope.cancelled_caught


async def test_a_parked_job_fires_until_it_wakes_its_task(autojump_clock: trio.abc.Clock) -> None:
    start = trio.current_time()
    job = Ticks(3)
    await park(job)
    assert [round(t - start, 6) for t in job.fired] == [0.25, 0.5, 0.75]
    assert trio.current_time() - start == 0.75


async def test_a_cancelled_park_is_not_fired_again(autojump_clock: trio.abc.Clock) -> None:
    job = Ticks(100)
    with trio.move_on_after(0.6):
        await park(job)
    await trio.sleep(5)
    assert len(job.fired) == 2


async def test_a_failing_job_raises_in_its_task_and_the_timer_goes_on(
    autojump_clock: trio.abc.Clock,
) -> None:
    with pytest.raises(ValueError, match="a bug in a job"):
        await park(Ticks(5, fail_at=2))
    job = Ticks(2)
    await park(job)
    assert len(job.fired) == 2
