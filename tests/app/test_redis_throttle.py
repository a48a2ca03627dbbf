"""The login throttle and the rate limit shared through Redis (issue 18): two instances, each
with its own link (as two processes), share one Redis; same decisions as the in-process
throttle with the same clock; keys expire; concurrent charges are counted exactly; while Redis
is lost each falls back to its in-process counters, and uses Redis again once it is back."""

from __future__ import annotations

import random
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from app.errors import RateLimited, ServiceUnavailable, Unauthenticated
from app.services.redis_link import RedisLink, open_redis
from app.services.redis_throttle import REDIS_TIMEOUT, RedisLoginThrottle, RedisRateLimit
from app.services.throttle import (
    Backoff,
    InProcessLoginThrottle,
    LoginPolicy,
    TokenBucketRateLimit,
)
from tests.app.harness import Session, live_server, make_settings
from tests.app.test_throttle import POLICY, ManualClock, login
from tests.redisutil import REDIS_URL, own_redis, redis_prefix


@asynccontextmanager
async def links(count: int = 2, url: str = REDIS_URL) -> AsyncIterator[list[RedisLink]]:
    """`count` links to one Redis under one fresh prefix, as `count` processes would have."""
    async with AsyncExitStack() as stack:
        prefix = await stack.enter_async_context(redis_prefix(url))
        found = []
        for _ in range(count):
            link = await stack.enter_async_context(open_redis(url, prefix=prefix))
            assert link is not None
            found.append(link)
        yield found


async def wrong() -> None:
    raise Unauthenticated("wrong username or password", code="invalid_credentials")


async def right() -> str:
    return "token"


async def outcome(throttle: Any, account: str, address: str, verify: Any) -> object:
    """What an attempt came to: its result, 401, or 429 with the wait."""
    try:
        return await throttle.attempt(account, address, verify)
    except Unauthenticated:
        return 401
    except RateLimited as exc:
        return ("429", exc.retry_after)
    except ServiceUnavailable:
        return 503


async def test_failures_charged_on_one_process_are_seen_on_the_other() -> None:
    clock = ManualClock()
    async with links() as (one, two):
        a, b = RedisLoginThrottle(one, POLICY, clock), RedisLoginThrottle(two, POLICY, clock)
        # three free failures and the fourth that starts the wait, alternating processes
        for throttle in (a, b, a, b):
            assert await outcome(throttle, "Bob", "10.0.0.1", wrong) == 401
        waits = []
        for i in range(6):
            ours, theirs = (a, b) if i % 2 else (b, a)
            wait = await theirs.retry_after("bob", "10.0.0.1")
            assert await outcome(ours, "bob", "10.0.0.1", right) == ("429", wait)
            waits.append(wait)
            clock.advance(wait)
            assert await outcome(ours, "BOB", "10.0.0.1", wrong) == 401
        assert waits == [1, 2, 4, 8, 8, 8]  # POLICY.pair: 3 free, from 1 s doubling, capped at 8
        clock.advance(8)
        assert await outcome(a, "bob", "10.0.0.1", right) == "token"
        assert await outcome(b, "bob", "10.0.0.1", wrong) == 401  # the success cleared it


async def test_the_account_cap_and_the_exemption_hold_across_processes() -> None:
    clock = ManualClock()
    async with links() as (one, two):
        a, b = RedisLoginThrottle(one, POLICY, clock), RedisLoginThrottle(two, POLICY, clock)
        assert await outcome(a, "bob", "owner", right) == "token"  # the owner, through A
        for i in range(POLICY.account.free + 5):  # guesses from many addresses, through B
            clock.advance(POLICY.account.cap)  # as fast as the account-wide wait allows
            assert await outcome(b, "bob", f"attacker-{i}", wrong) == 401
        # a new address waits the account-wide cap, seen through either process ...
        assert await b.retry_after("bob", "traveller") == POLICY.account.cap
        assert await outcome(a, "bob", "traveller", right) == ("429", POLICY.account.cap)
        # ... the owner's address, known through A, is exempt on B
        assert await b.retry_after("bob", "owner") == 0
        assert await outcome(b, "bob", "owner", right) == "token"
        # which cleared the account-wide counter for everyone
        assert await a.retry_after("bob", "traveller") == 0


async def test_many_accounts_from_one_address_are_throttled_across_processes() -> None:
    clock = ManualClock()
    async with links() as (one, two):
        a, b = RedisLoginThrottle(one, POLICY, clock), RedisLoginThrottle(two, POLICY, clock)
        for i in range(POLICY.address.free + 1):
            assert await outcome((a, b)[i % 2], f"user{i}", "10.0.0.1", wrong) == 401
        assert await outcome(a, "someone-else", "10.0.0.1", wrong) == ("429", 1.0)
        assert await outcome(b, "someone-else", "10.0.0.2", wrong) == 401


async def test_the_same_decisions_as_in_process_with_the_same_clock() -> None:
    """A long random run of attempts (wrong, right, failing checks), clock steps short and
    past the forget periods: the shared throttle decides exactly as the in-process one."""
    rng = random.Random(18)
    shared_clock, local_clock = ManualClock(), ManualClock()
    local = InProcessLoginThrottle(POLICY, local_clock)

    async def unavailable() -> None:
        raise ServiceUnavailable("database unavailable")

    async with links() as (one, two):
        shared = [RedisLoginThrottle(link, POLICY, shared_clock) for link in (one, two)]
        for step in range(600):
            account = rng.choice(["bob", "Bob", "carol"])
            address = rng.choice(["10.0.0.1", "10.0.0.2", "::1"])
            verify = rng.choices([wrong, right, unavailable], weights=[8, 1, 1])[0]
            expected = await outcome(local, account, address, verify)
            assert await outcome(rng.choice(shared), account, address, verify) == expected, step
            advance = rng.choice([0, 0.5, 1, 3, 7, 901, 3601])
            shared_clock.advance(advance)
            local_clock.advance(advance)


async def test_keys_expire_after_the_forget_periods() -> None:
    clock = ManualClock()
    async with links(1) as (link,):
        throttle = RedisLoginThrottle(link, POLICY, clock)
        assert await outcome(throttle, "bob", "10.0.0.1", wrong) == 401
        pair, address, account, known = throttle.keys("bob", "10.0.0.1")
        for key, backoff in ((pair, POLICY.pair), (address, POLICY.address)):
            ttl = await link.client.pttl(key)
            assert backoff.forget_after * 1000 - 5000 < ttl <= backoff.forget_after * 1000
        assert 0 < await link.client.pttl(account) <= POLICY.account.forget_after * 1000
        assert await outcome(throttle, "bob", "10.0.0.1", right) == "token"
        remember = POLICY.remember_addresses * 1000
        assert remember - 5000 < await link.client.pttl(known) <= remember
        assert await link.client.exists([pair, account]) == 0  # cleared by the success
        assert await link.client.pttl(address) > 0

        limit = RedisRateLimit(link, 3, clock)
        await limit.acquire(7)
        assert 55_000 < await link.client.pttl(limit.key(7)) <= 60_000  # full again in 60 s


async def test_forgotten_when_the_key_expires_on_redis_time() -> None:
    """Without a test clock the scripts use Redis's TIME, and forgetting is the key expiring."""
    quick = Backoff(free=0, base=5.0, cap=5.0, forget_after=0.2)
    policy = LoginPolicy(pair=quick, address=quick, account=quick)
    async with links(1) as (link,):
        throttle = RedisLoginThrottle(link, policy)
        assert await outcome(throttle, "bob", "10.0.0.1", wrong) == 401
        wait = await throttle.retry_after("bob", "10.0.0.1")
        assert 4.5 < wait <= 5.0
        pair = throttle.keys("bob", "10.0.0.1")[0]
        with trio.fail_after(5):
            while await link.client.exists([pair]):  # noqa: ASYNC110 (Redis expires it)
                await trio.sleep(0.05)
        assert await throttle.retry_after("bob", "10.0.0.1") == 0


async def test_concurrent_guesses_through_two_processes_are_counted_exactly() -> None:
    clock = ManualClock()
    checked = 0

    async def slow_wrong() -> None:
        nonlocal checked
        checked += 1
        await trio.sleep(0.01)  # the password check takes time: the others go on meanwhile
        await wrong()

    async with links() as (one, two):
        throttles = [RedisLoginThrottle(link, POLICY, clock) for link in (one, two)]
        results: list[object] = []

        async def guess(i: int) -> None:
            results.append(await outcome(throttles[i % 2], "bob", "10.0.0.1", slow_wrong))

        async with trio.open_nursery() as nursery:
            for i in range(40):
                nursery.start_soon(guess, i)
        # the free failures, plus the one that starts the wait, reach the password check
        assert checked == POLICY.pair.free + 1
        assert results.count(401) == POLICY.pair.free + 1
        assert results.count(("429", 1.0)) == 40 - POLICY.pair.free - 1
        pair = throttles[0].keys("bob", "10.0.0.1")[0]
        assert await one.client.hget(pair, "n") == str(POLICY.pair.free + 1).encode()

        # unthrottled (many free failures): every one of many concurrent charges counts
        lenient = LoginPolicy(
            pair=Backoff(free=1000, base=1.0, cap=1.0, forget_after=900.0),
            address=Backoff(free=1000, base=1.0, cap=1.0, forget_after=900.0),
            account=Backoff(free=1000, base=1.0, cap=1.0, forget_after=900.0),
        )
        throttles = [RedisLoginThrottle(link, lenient, clock) for link in (one, two)]
        async with trio.open_nursery() as nursery:
            for i in range(200):
                nursery.start_soon(outcome, throttles[i % 2], "carol", f"10.1.{i}", wrong)
        pair, address, account, _ = throttles[0].keys("carol", "10.1.0")
        assert await one.client.hget(account, "n") == b"200"
        assert await one.client.hget(address, "n") == b"1"


async def test_a_failing_check_is_not_charged() -> None:
    clock = ManualClock()

    async def unavailable() -> None:
        raise ServiceUnavailable("database unavailable")

    async with links(1) as (link,):
        throttle = RedisLoginThrottle(link, POLICY, clock)
        for _ in range(POLICY.pair.free + 3):
            assert await outcome(throttle, "bob", "10.0.0.1", unavailable) == 503
        assert await link.client.exists(throttle.keys("bob", "10.0.0.1")) == 0


async def test_rate_limit_tokens_are_shared() -> None:
    clock = ManualClock()
    async with links() as (one, two):
        a, b = RedisRateLimit(one, 3, clock), RedisRateLimit(two, 3, clock)  # bursts of 3, 1/20 s
        await a.acquire(7)
        await b.acquire(7)
        await a.acquire(7)
        with pytest.raises(RateLimited) as caught:
            await b.acquire(7)
        assert caught.value.retry_after == pytest.approx(20.0)
        await b.acquire(8)  # per user
        clock.advance(20)
        await b.acquire(7)
        with pytest.raises(RateLimited):
            await a.acquire(7)

        taken = 0

        async def request(limit: RedisRateLimit) -> None:
            nonlocal taken
            try:
                await limit.acquire("burst")
            except RateLimited:
                return
            taken += 1

        async with trio.open_nursery() as nursery:
            for i in range(30):
                nursery.start_soon(request, (a, b)[i % 2])
        assert taken == 3


async def test_rate_limit_decides_as_in_process() -> None:
    rng = random.Random(11)
    shared_clock, local_clock = ManualClock(), ManualClock()
    local = TokenBucketRateLimit(5, local_clock)

    async def result(acquire: Callable[[int], Awaitable[None]], user: int) -> float:
        try:
            await acquire(user)
        except RateLimited as exc:
            assert exc.retry_after is not None
            return exc.retry_after
        return 0.0

    async with links() as (one, two):
        shared = [RedisRateLimit(link, 5, shared_clock) for link in (one, two)]
        for step in range(400):
            user = rng.choice([1, 2])
            expected = await result(local.acquire, user)
            assert await result(rng.choice(shared).acquire, user) == expected, step
            advance = rng.choice([0, 0, 0.1, 1.5, 12, 61])
            shared_clock.advance(advance)
            local_clock.advance(advance)


async def test_redis_lost_falls_back_per_process_and_back(tmp_path: Path) -> None:
    clock = ManualClock()
    async with own_redis(tmp_path) as server, open_redis(server.url, prefix="lost") as link:
        assert link is not None
        throttle = RedisLoginThrottle(link, POLICY, clock)
        limit = RedisRateLimit(link, 2, clock)
        assert await outcome(throttle, "bob", "10.0.0.1", wrong) == 401
        await server.stop()

        # logins and requests go on, throttled by this process alone
        assert await outcome(throttle, "bob", "10.0.0.1", right) == "token"
        assert not link.up
        for _ in range(POLICY.pair.free + 1):
            assert await outcome(throttle, "bob", "10.0.0.1", wrong) == 401
        assert await outcome(throttle, "bob", "10.0.0.1", wrong) == ("429", 1.0)
        assert throttle.fallback.retry_after("bob", "10.0.0.1") == 1.0
        await limit.acquire(1)
        await limit.acquire(1)
        with pytest.raises(RateLimited):
            await limit.acquire(1)

        await server.start()  # empty: it kept nothing
        assert await link.ping()
        assert link.up
        # shared again: Redis's (empty) counters decide, and charges land there
        assert await outcome(throttle, "bob", "10.0.0.1", wrong) == 401
        pair = throttle.keys("bob", "10.0.0.1")[0]
        assert await link.client.hget(pair, "n") == b"1"
        await limit.acquire(1)
        assert await link.client.exists([limit.key(1)]) == 1


async def test_wrong_passwords_on_two_servers_are_throttled_together(
    db_url: str, fake: Any
) -> None:
    async with redis_prefix() as prefix:
        settings = make_settings(
            db_url,
            fake.base_url,
            redis_url=REDIS_URL,
            redis_prefix=prefix,
            login_free_attempts=3,
            rate_limit_per_minute=2,
        )
        async with live_server(settings) as a, live_server(settings) as b:
            for server in (a, b):
                assert isinstance(server.services.login_throttle, RedisLoginThrottle)
                assert isinstance(server.services.rate_limit, RedisRateLimit)
            bob_a = await a.register("bob", "password123")
            # Each server's throttle, with its link, on a clock of the test (the real wait
            # would start counting down before the next request)
            clock = ManualClock()
            for server in (a, b):
                server.services.login_throttle = RedisLoginThrottle(
                    server.services.redis, POLICY, clock
                )
            for server in (a, b, a, b):  # three free failures, the fourth starts the wait
                assert (await login(server.client, "wrong-password")).status_code == 401
            r = await login(b.client, "wrong-password")
            assert r.status_code == 429
            assert r.json()["error"]["code"] == "rate_limited"
            assert r.headers["Retry-After"] == "1"
            assert (await login(a.client, "password123")).status_code == 429
            clock.advance(1)
            assert (await login(a.client, "password123")).status_code == 200

            # the per-user limit (2 a minute) holds across the two servers
            bob_b = Session(b, bob_a.token, bob_a.user)
            character = await bob_a.character()
            chat = f"/api/characters/{character['id']}/chat"
            assert (await bob_a.request("POST", chat, json={"content": "hi"})).status_code == 200
            assert (await bob_b.request("POST", chat, json={"content": "hi"})).status_code == 200
            r = await bob_a.request("POST", chat, json={"content": "hi"})
            assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0


async def test_a_redis_that_hangs_is_lost_after_the_timeout(tmp_path: Path) -> None:
    """A Redis that accepts but does not answer (stopped): the attempt falls back after
    `REDIS_TIMEOUT` instead of hanging, and the next ones fall back at once."""
    clock = ManualClock()
    async with own_redis(tmp_path) as server, open_redis(server.url, prefix="hang") as link:
        assert link is not None and server.process is not None
        throttle = RedisLoginThrottle(link, POLICY, clock)
        assert await outcome(throttle, "bob", "10.0.0.1", wrong) == 401
        server.process.send_signal(signal.SIGSTOP)
        try:
            started = trio.current_time()
            with trio.fail_after(REDIS_TIMEOUT + 5):
                assert await outcome(throttle, "bob", "10.0.0.1", right) == "token"
            assert trio.current_time() - started >= REDIS_TIMEOUT
            assert not link.up
            with trio.fail_after(1):
                assert await outcome(throttle, "bob", "10.0.0.1", wrong) == 401
        finally:
            server.process.send_signal(signal.SIGCONT)
        with trio.fail_after(10):
            while not await link.ping():  # noqa: ASYNC110 (the link's own probe)
                pass
        assert await outcome(throttle, "bob", "10.0.0.1", wrong) == 401
        pair = throttle.keys("bob", "10.0.0.1")[0]
        # Redis kept its count, and ran the charge it had been sent when it stopped once it went
        # on (that attempt then succeeded in-process): a hung Redis may charge one attempt late
        assert await link.client.hget(pair, "n") == b"3"


async def test_logins_and_limited_routes_work_while_redis_is_lost(
    db_url: str, fake: Any, tmp_path: Path
) -> None:
    async with own_redis(tmp_path) as server:
        settings = make_settings(
            db_url,
            fake.base_url,
            redis_url=server.url,
            redis_prefix="lost",
            rate_limit_per_minute=5,
        )
        async with live_server(settings) as live:
            bob = await live.register("bob", "password123")
            character = await bob.character()
            await server.stop()
            assert (await login(live.client, "wrong-password")).status_code == 401
            assert (await login(live.client, "password123")).status_code == 200
            chat = f"/api/characters/{character['id']}/chat"
            assert (await bob.request("POST", chat, json={"content": "hi"})).status_code == 200
            assert not live.services.redis.up
            # counted in this process meanwhile (the chat request took one of the 5)
            throttle = live.services.login_throttle
            assert isinstance(throttle, RedisLoginThrottle)
            assert throttle.fallback.retry_after("bob", "127.0.0.1") == 0  # cleared by success
            limit = live.services.rate_limit
            assert isinstance(limit, RedisRateLimit)
            for _ in range(4):
                await limit.fallback.acquire(int(bob.user["id"]))
            with pytest.raises(RateLimited):
                await limit.fallback.acquire(int(bob.user["id"]))
