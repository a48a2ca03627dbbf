"""The limiter: global and per-user bounds, Overloaded after the queue timeout, live resize."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from llm.errors import Overloaded
from llm.limiter import LLMLimiter


async def hold(limiter: LLMLimiter, user: str | None, release: trio.Event) -> None:
    async with limiter.slot(user):
        await release.wait()


async def test_global_bound_and_statistics(autojump_clock: trio.testing.MockClock) -> None:
    limiter = LLMLimiter(2, per_user=5, queue_timeout=100)
    release = trio.Event()
    async with trio.open_nursery() as nursery:
        for i in range(3):
            nursery.start_soon(hold, limiter, f"u{i}", release)
        await trio.testing.wait_all_tasks_blocked()
        assert await limiter.statistics() == {"total": 2, "borrowed": 2, "waiting": 1}
        release.set()
    assert await limiter.statistics() == {"total": 2, "borrowed": 0, "waiting": 0}
    assert limiter.active_users == 0


async def test_per_user_bound(autojump_clock: trio.testing.MockClock) -> None:
    limiter = LLMLimiter(10, per_user=2, queue_timeout=100)
    release = trio.Event()
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(hold, limiter, "alice", release)
        nursery.start_soon(hold, limiter, "bob", release)
        nursery.start_soon(hold, limiter, None, release)
        await trio.testing.wait_all_tasks_blocked()
        # alice's third call waits for her own bound, not for a global slot
        assert await limiter.statistics() == {"total": 10, "borrowed": 4, "waiting": 1}
        assert limiter.active_users == 2
        release.set()
    assert limiter.active_users == 0


async def test_overloaded_after_queue_timeout(autojump_clock: trio.testing.MockClock) -> None:
    limiter = LLMLimiter(1, per_user=1, queue_timeout=10)
    release = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold, limiter, "a", release)
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        with pytest.raises(Overloaded) as info:
            async with limiter.slot("b"):
                pytest.fail("got a slot")
        assert trio.current_time() - start == pytest.approx(10)
        assert info.value.retry_after > 0
        # the same for the per-user bound
        with pytest.raises(Overloaded):
            async with limiter.slot("a"):
                pytest.fail("got a slot")
        assert await limiter.statistics() == {"total": 1, "borrowed": 1, "waiting": 0}
        assert limiter.active_users == 1
        release.set()
    assert limiter.active_users == 0


async def test_waiter_gets_slot_before_timeout(autojump_clock: trio.testing.MockClock) -> None:
    limiter = LLMLimiter(1, per_user=1, queue_timeout=10)

    async def short_hold() -> None:
        async with limiter.slot("a"):
            await trio.sleep(9)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(short_hold)
        await trio.testing.wait_all_tasks_blocked()
        async with limiter.slot("b"):
            assert trio.current_time() == pytest.approx(9)


async def test_live_resize(autojump_clock: trio.testing.MockClock) -> None:
    limiter = LLMLimiter(1, per_user=10, queue_timeout=100)
    release = trio.Event()
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(hold, limiter, "a", release)
        await trio.testing.wait_all_tasks_blocked()
        assert (await limiter.statistics())["borrowed"] == 1
        await limiter.resize(3)
        await trio.testing.wait_all_tasks_blocked()
        assert await limiter.statistics() == {"total": 3, "borrowed": 3, "waiting": 0}
        await limiter.resize(1)  # shrinking keeps the holders; new calls wait
        assert await limiter.statistics() == {"total": 1, "borrowed": 3, "waiting": 0}
        release.set()
    with pytest.raises(ValueError):
        await limiter.resize(0)


async def test_one_task_may_hold_two_slots(autojump_clock: trio.testing.MockClock) -> None:
    limiter = LLMLimiter(2, per_user=2, queue_timeout=1)
    async with limiter.slot("a"), limiter.slot("a"):
        assert (await limiter.statistics())["borrowed"] == 2


async def test_cancelled_waiter_leaves_no_trace(autojump_clock: trio.testing.MockClock) -> None:
    limiter = LLMLimiter(1, per_user=1, queue_timeout=100)
    release = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold, limiter, "a", release)
        await trio.testing.wait_all_tasks_blocked()
        with trio.move_on_after(5):
            async with limiter.slot("b"):
                pytest.fail("got a slot")
        assert await limiter.statistics() == {"total": 1, "borrowed": 1, "waiting": 0}
        assert limiter.active_users == 1
        release.set()
