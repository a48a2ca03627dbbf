"""The shared LLM limiter: two limiters on one Redis act as two server processes of one
service (global and per-user bounds, FIFO, queue timeout, leases of a crashed process, live
resize, statistics), and a process falls back to its own limiter while Redis is lost."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest
import trio

from app.services.redis_link import RedisLink, open_redis
from app.services.shared_limiter import SharedLLMLimiter, SlotKeys
from llm import Overloaded
from tests.redisutil import REDIS_URL, RedisServer, own_redis, redis_prefix, wait_until

LEASE = 5.0  # seconds: no renewal is late by that much on a loaded machine
CRASH_LEASE = 0.3  # short, so the crash test is quick


@asynccontextmanager
async def process(
    link: RedisLink,
    total: int,
    *,
    per_user: int = 8,
    queue_timeout: float = 10.0,
    lease: float = LEASE,
) -> AsyncIterator[SharedLLMLimiter]:
    """One server process's limiter, with its background task running."""
    limiter = SharedLLMLimiter(
        link, total, per_user=per_user, queue_timeout=queue_timeout, lease=lease
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(limiter.run)
        yield limiter
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def two_processes(
    total: int, *, per_user: int = 8, queue_timeout: float = 10.0
) -> AsyncIterator[tuple[SharedLLMLimiter, SharedLLMLimiter]]:
    """Two limiters with their own Redis clients, sharing one prefix."""
    async with AsyncExitStack() as stack:
        prefix = await stack.enter_async_context(redis_prefix())
        limiters = []
        for _ in range(2):
            link = await stack.enter_async_context(shared_link(prefix))
            limiters.append(
                await stack.enter_async_context(
                    process(link, total, per_user=per_user, queue_timeout=queue_timeout)
                )
            )
        yield limiters[0], limiters[1]


@asynccontextmanager
async def shared_link(prefix: str) -> AsyncIterator[RedisLink]:
    async with open_redis(REDIS_URL, prefix=prefix) as link:
        assert link is not None
        yield link


async def figures(limiter: SharedLLMLimiter) -> tuple[int, int, int]:
    stats = await limiter.statistics()
    return stats["total"], stats["borrowed"], stats["waiting"]


class Holders:
    """Counts the calls inside their slot, overall and per user, and the most seen at once."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.by_user: Counter[str] = Counter()
        self.most_by_user: Counter[str] = Counter()
        self.order: list[str] = []

    async def call(
        self, limiter: SharedLLMLimiter, user: str, go: trio.Event, name: str = ""
    ) -> None:
        async with limiter.slot(user):
            self.order.append(name)
            self.now += 1
            self.by_user[user] += 1
            self.most = max(self.most, self.now)
            self.most_by_user[user] = max(self.most_by_user[user], self.by_user[user])
            await go.wait()
            self.now -= 1
            self.by_user[user] -= 1


async def test_two_processes_never_exceed_the_global_and_per_user_bounds() -> None:
    holders = Holders()
    async with two_processes(3, per_user=2) as (a, b):
        async with trio.open_nursery() as nursery:
            go = trio.Event()
            for i in range(12):
                limiter = a if i % 2 else b
                nursery.start_soon(holders.call, limiter, "alice" if i < 8 else "bob", go)

            async def full() -> bool:
                return await figures(a) == (3, 3, 9)

            await wait_until(full)
            assert holders.now == 3
            assert max(holders.by_user.values()) == 2  # alice or bob at the bound
            assert a.active_users + b.active_users == 4  # alice and bob in each process
            go.set()
        assert await figures(a) == await figures(b) == (3, 0, 0)
    assert holders.most == 3
    assert max(holders.most_by_user.values()) == 2


async def test_waiters_are_admitted_in_arrival_order_across_processes() -> None:
    async with two_processes(1) as (a, b), trio.open_nursery() as nursery:
        holders = Holders()
        first = trio.Event()
        nursery.start_soon(holders.call, a, "u0", first, "first")
        await wait_until(lambda: _borrowed(a, 1))
        go = trio.Event()
        go.set()  # each waiter leaves its slot as soon as it has it
        for n in range(1, 7):
            limiter = b if n % 3 else a
            nursery.start_soon(holders.call, limiter, f"u{n}", go, f"w{n}")
            await wait_until(lambda n=n: _waiting(a, n))  # type: ignore[misc]
        first.set()
    assert holders.order == ["first", "w1", "w2", "w3", "w4", "w5", "w6"]


async def test_a_waiter_whose_user_is_at_their_bound_is_passed_over() -> None:
    async with two_processes(2, per_user=1) as (a, b), trio.open_nursery() as nursery:
        holders = Holders()
        hold = trio.Event()
        nursery.start_soon(holders.call, a, "alice", hold, "alice-1")
        await wait_until(lambda: _borrowed(a, 1))
        nursery.start_soon(holders.call, b, "alice", hold, "alice-2")
        await wait_until(lambda: _waiting(a, 1))
        nursery.start_soon(holders.call, a, "bob", hold, "bob-1")
        await wait_until(lambda: _borrowed(b, 2))  # bob got the free slot past alice-2

        async def bob_in() -> bool:
            return holders.order == ["alice-1", "bob-1"]

        await wait_until(bob_in)
        assert await figures(b) == (2, 2, 1)
        hold.set()
    assert holders.order == ["alice-1", "bob-1", "alice-2"]


async def test_a_long_queue_of_a_user_at_their_bound_does_not_hide_others() -> None:
    async with two_processes(2, per_user=1) as (a, b), trio.open_nursery() as nursery:
        holders = Holders()
        hold = trio.Event()
        nursery.start_soon(holders.call, a, "alice", hold, "alice")
        await wait_until(lambda: _borrowed(a, 1))
        for i in range(150):  # more than one chunk of the queue the admission reads
            nursery.start_soon(holders.call, a if i % 2 else b, "alice", hold, "alice")
        await wait_until(lambda: _waiting(a, 150))
        nursery.start_soon(holders.call, b, "bob", hold, "bob")

        async def bob_in() -> bool:
            return holders.order[-1] == "bob"

        await wait_until(bob_in)
        assert await figures(a) == (2, 2, 150)
        hold.set()
    assert holders.order.count("alice") == 151


async def test_waiting_past_the_queue_timeout_is_overloaded_and_leaves_the_queue() -> None:
    async with two_processes(1, queue_timeout=0.2) as (a, b):
        async with a.slot("u1"):
            with pytest.raises(Overloaded) as caught:
                async with b.slot("u2"):
                    pytest.fail("admitted past the total")
            assert caught.value.retry_after > 0
            assert await figures(b) == (1, 1, 0)
        assert await figures(b) == (1, 0, 0)


async def test_the_slots_of_a_crashed_process_come_back_after_the_lease() -> None:
    async with (
        redis_prefix() as prefix,
        shared_link(prefix) as link_a,
        shared_link(prefix) as link_b,
    ):
        async with process(link_b, 2, lease=CRASH_LEASE) as b:
            async with trio.open_nursery() as crashed:
                a = SharedLLMLimiter(link_a, 2, per_user=8, queue_timeout=10, lease=CRASH_LEASE)
                await crashed.start(a.run)
                held = [a.slot("u"), a.slot("u")]
                for slot in held:  # entered and never left: the process dies holding them
                    await slot.__aenter__()
                assert await figures(b) == (2, 2, 0)
                crashed.cancel_scope.cancel()  # no more renewals, no releases
            async with b.slot("v"):  # admitted once a lease of a's ran out
                assert (await figures(b))[1] <= 2

            async def both_reclaimed() -> bool:
                return await figures(b) == (2, 0, 0)

            await wait_until(both_reclaimed)
            for slot in held:  # releasing a reclaimed slot changes nothing
                await slot.__aexit__(None, None, None)
            assert await figures(b) == (2, 0, 0)


async def test_a_waiter_whose_queue_place_expired_queues_again() -> None:
    async with two_processes(1) as (a, b), trio.open_nursery() as nursery:
        holders = Holders()
        hold, go = trio.Event(), trio.Event()
        go.set()
        nursery.start_soon(holders.call, a, "u1", hold, "holder")
        await wait_until(lambda: _borrowed(a, 1))
        nursery.start_soon(holders.call, b, "u2", go, "waiter")
        await wait_until(lambda: _waiting(a, 1))
        # as if b had stalled past the lease and another process reclaimed its place
        keys, client = SlotKeys.of(b.link), b.link.client
        (member,) = await client.zrange(keys.queue, 0, -1)
        await client.zrem(keys.queue, [member])
        await client.zrem(keys.waiters, [member])
        assert await figures(a) == (1, 1, 0)
        hold.set()  # the release wakes b, whose next attempt queues it again
    assert holders.order == ["holder", "waiter"]


async def test_resize_acts_on_every_process_and_admits_waiters() -> None:
    async with two_processes(1) as (a, b), trio.open_nursery() as nursery:
        holders = Holders()
        hold = trio.Event()
        nursery.start_soon(holders.call, a, "u1", hold, "one")
        await wait_until(lambda: _borrowed(a, 1))
        nursery.start_soon(holders.call, b, "u2", hold, "two")
        await wait_until(lambda: _waiting(a, 1))
        await a.resize(2)
        await wait_until(lambda: _borrowed(b, 2))  # the waiter in b got the new slot
        assert await figures(b) == (2, 2, 0)

        async def fallback_follows() -> bool:
            return (await b.fallback.statistics())["total"] == 2

        await wait_until(fallback_follows)
        with pytest.raises(ValueError):
            await b.resize(0)
        hold.set()


async def test_statistics_count_every_process() -> None:
    async with two_processes(3) as (a, b), trio.open_nursery() as nursery:
        holders = Holders()
        hold = trio.Event()
        for limiter in (a, a, b, b):
            nursery.start_soon(holders.call, limiter, "u", hold)
        await wait_until(lambda: _waiting(a, 1))
        assert await figures(a) == await figures(b) == (3, 3, 1)
        assert (await a.fallback.statistics())["borrowed"] == 0
        hold.set()


async def test_while_redis_is_lost_calls_use_the_process_limiter_and_return_after(
    tmp_path: Path,
) -> None:
    async with own_redis(tmp_path) as server:
        await lost_and_back(server)


async def lost_and_back(server: RedisServer) -> None:
    async with (
        open_redis(server.url, prefix="p") as link,
        trio.open_nursery() as nursery,
    ):
        assert link is not None
        nursery.start_soon(link.watch, 0.05)
        async with process(link, 1) as limiter:
            holders = Holders()
            shared_hold, local_hold = trio.Event(), trio.Event()
            nursery.start_soon(holders.call, limiter, "u1", shared_hold, "shared")
            await wait_until(lambda: _borrowed(limiter, 1))
            nursery.start_soon(holders.call, limiter, "u2", local_hold, "moved")
            await wait_until(lambda: _waiting(limiter, 1))

            await server.stop()  # Redis lost: the waiter moves to the process's own pool

            async def moved() -> bool:
                return holders.order == ["shared", "moved"]

            await wait_until(moved)
            assert not link.up
            assert await figures(limiter) == (1, 1, 0)  # the fallback's figures
            shared_hold.set()  # released to Redis: lost, so left to its lease

            async def shared_left() -> bool:
                return holders.order.count("shared") == 1 and holders.by_user["u1"] == 0

            await wait_until(shared_left)
            await server.start()

            async def back() -> bool:
                return link.up

            await wait_until(back)
            again = trio.Event()
            nursery.start_soon(holders.call, limiter, "u3", again, "shared-again")
            await wait_until(lambda: _borrowed(limiter, 1))  # counted in Redis again
            assert (await limiter.fallback.statistics())["borrowed"] == 1  # "moved"
            local_hold.set()

            async def local_released() -> bool:
                return (await limiter.fallback.statistics())["borrowed"] == 0

            await wait_until(local_released)
            assert await figures(limiter) == (1, 1, 0)
            again.set()
        nursery.cancel_scope.cancel()
    assert holders.order == ["shared", "moved", "shared-again"]


async def _borrowed(limiter: SharedLLMLimiter, n: int) -> bool:
    return (await limiter.statistics())["borrowed"] == n


async def _waiting(limiter: SharedLLMLimiter, n: int) -> bool:
    return (await limiter.statistics())["waiting"] == n
