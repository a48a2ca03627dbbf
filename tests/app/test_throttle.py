"""Login throttling and per-user rate limits (issue 11 point 3): 429 `rate_limited` with
`Retry-After`, exponential and capped, and never a lockout of the owner; exact with a manual
clock. HTTP tests use real connections from several loopback addresses."""

from __future__ import annotations

import httpx
import pytest

from app.errors import RateLimited, Unauthenticated
from app.services.throttle import (
    Backoff,
    FailureCounter,
    InProcessLoginThrottle,
    LoginPolicy,
    TokenBucketRateLimit,
    rate_limit,
)
from tests.app.harness import Live

POLICY = LoginPolicy(
    pair=Backoff(free=3, base=1.0, cap=8.0, forget_after=900.0),
    address=Backoff(free=50, base=1.0, cap=60.0, forget_after=3600.0),
    account=Backoff(free=6, base=1.0, cap=4.0, forget_after=900.0),
)


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def client_from(live: Live, address: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=live.base_url, transport=transport, timeout=30)


async def login(client: httpx.AsyncClient, password: str, username: str = "bob") -> httpx.Response:
    return await client.post("/api/auth/login", json={"username": username, "password": password})


def test_backoff_is_free_then_exponential_then_capped() -> None:
    backoff = Backoff(free=3, base=1.0, cap=8.0, forget_after=60.0)
    assert [backoff.delay(n) for n in range(1, 10)] == [0, 0, 0, 1, 2, 4, 8, 8, 8]
    assert backoff.delay(10**6) == 8.0
    assert backoff.steps() == [1, 2, 4, 8]


@pytest.mark.parametrize(
    "backoff",
    [
        Backoff(free=0, base=1.0, cap=1.0, forget_after=1.0),
        Backoff(free=5, base=1.0, cap=300.0, forget_after=900.0),
        Backoff(free=50, base=0.25, cap=30.0, forget_after=900.0),
        Backoff(free=2, base=3.0, cap=1e9, forget_after=900.0),
    ],
)
def test_backoff_steps_are_its_schedule_as_a_table(backoff: Backoff) -> None:
    """`steps()` is what the shared throttle looks waits up in: the same as `delay`."""
    steps = backoff.steps()
    assert steps[-1] == backoff.cap or len(steps) == 64
    for n in range(backoff.free + 200):
        table = 0.0 if n <= backoff.free else steps[min(n - backoff.free, len(steps)) - 1]
        assert table == backoff.delay(n)


def test_failures_are_forgotten_after_a_quiet_period() -> None:
    clock = ManualClock()
    counter = FailureCounter(Backoff(free=1, base=5.0, cap=5.0, forget_after=60.0), clock)
    counter.charge("k")
    counter.charge("k")
    assert counter.retry_after("k") == 5.0
    clock.advance(59)
    assert counter.retry_after("k") == 0.0
    counter.charge("k")  # still remembered: third failure
    assert counter.retry_after("k") == 5.0
    clock.advance(60)
    counter.charge("k")  # forgotten, this is the first again
    assert counter.retry_after("k") == 0.0


def test_counters_keep_a_bounded_number_of_keys() -> None:
    counter = FailureCounter(
        Backoff(free=0, base=1.0, cap=1.0, forget_after=60.0), ManualClock(), 3
    )
    for key in "abcd":
        counter.charge(key)
    assert counter.retry_after("a") == 0.0  # the oldest was dropped
    assert counter.retry_after("d") == 1.0


async def test_many_accounts_from_one_address_are_throttled() -> None:
    clock = ManualClock()
    throttle = InProcessLoginThrottle(POLICY, clock)

    async def wrong() -> None:
        raise Unauthenticated("wrong username or password", code="invalid_credentials")

    for i in range(POLICY.address.free + 1):
        with pytest.raises(Unauthenticated):
            await throttle.attempt(f"user{i}", "10.0.0.1", wrong)
    with pytest.raises(RateLimited):
        await throttle.attempt("someone-else", "10.0.0.1", wrong)
    assert throttle.retry_after("someone-else", "10.0.0.2") == 0.0  # other addresses are not


async def test_wrong_passwords_get_429_with_exponential_retry_after(live: Live) -> None:
    clock = ManualClock()
    live.services.login_throttle = InProcessLoginThrottle(POLICY, clock)
    await live.register("bob", "password123")
    for _ in range(4):  # three free failures, and the fourth that starts the wait
        assert (await login(live.client, "wrong-password")).status_code == 401
    waits = []
    for _ in range(6):
        r = await login(live.client, "wrong-password")
        assert r.status_code == 429
        assert r.json()["error"]["code"] == "rate_limited"
        waits.append(int(r.headers["Retry-After"]))
        assert (await login(live.client, "password123")).status_code == 429  # no test while due
        clock.advance(waits[-1])
        assert (await login(live.client, "wrong-password")).status_code == 401
    assert waits == [1, 2, 4, 8, 8, 8]
    clock.advance(8)
    assert (await login(live.client, "password123")).status_code == 200
    assert (await login(live.client, "wrong-password")).status_code == 401  # cleared on success


async def test_an_attacker_elsewhere_cannot_lock_the_owner_out(live: Live) -> None:
    clock = ManualClock()
    live.services.login_throttle = InProcessLoginThrottle(POLICY, clock)
    await live.register("bob", "password123")
    async with (
        client_from(live, "127.0.0.1") as owner,
        client_from(live, "127.0.0.2") as attacker,
        client_from(live, "127.0.0.3") as traveller,
    ):
        assert (await login(owner, "password123")).status_code == 200
        statuses = set()
        for _ in range(200):  # guess as fast as the throttle allows
            r = await login(attacker, "a-wrong-guess")
            statuses.add(r.status_code)
            if r.status_code == 429:
                clock.advance(int(r.headers["Retry-After"]))
        assert statuses == {401, 429}
        # The owner's usual address is not slowed by the account-wide throttle ...
        assert (await login(owner, "password123")).status_code == 200
        # ... and a new address waits at most the account-wide cap, then gets in.
        for _ in range(POLICY.account.free + 10):
            clock.advance(POLICY.address.cap)
            assert (await login(attacker, "a-wrong-guess")).status_code == 401
        r = await login(traveller, "password123")
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) == POLICY.account.cap
        assert (await login(owner, "password123")).status_code == 200
        clock.advance(POLICY.account.cap)
        assert (await login(traveller, "password123")).status_code == 200


async def test_token_bucket_allows_bursts_then_one_request_per_interval() -> None:
    clock = ManualClock()
    limit = TokenBucketRateLimit(3, clock)  # one request per 20 s, bursts of 3
    for _ in range(3):
        await limit.acquire(7)
    with pytest.raises(RateLimited) as caught:
        await limit.acquire(7)
    assert caught.value.retry_after == pytest.approx(20.0)
    await limit.acquire(8)  # per user
    clock.advance(20)
    await limit.acquire(7)
    with pytest.raises(RateLimited):
        await limit.acquire(7)


async def test_rate_limit_zero_is_off() -> None:
    limit = rate_limit(0)
    for _ in range(10_000):
        await limit.acquire(1)


async def test_expensive_routes_are_rate_limited_per_user(live: Live) -> None:
    clock = ManualClock()
    live.services.rate_limit = TokenBucketRateLimit(2, clock)  # one per 30 s, bursts of 2
    alice = await live.register("alice")
    carol = await live.register("carol")
    character = await alice.character()
    chat = f"/api/characters/{character['id']}/chat"
    for _ in range(2):
        assert (await alice.request("POST", chat, json={"content": "hi"})).status_code == 200
    r = await alice.request("POST", chat, json={"content": "hi"})
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limited" and r.headers["Retry-After"] == "30"
    regenerate = await alice.request("POST", f"{chat}/regenerate")
    assert regenerate.status_code == 429
    assert (await alice.request("GET", f"{chat}/messages")).status_code == 200  # cheap: no limit
    other = await carol.request("POST", "/api/characters/generate", json={"name": "Tom"})
    assert other.status_code == 201
    clock.advance(30)
    assert (await alice.request("POST", chat, json={"content": "hi"})).status_code == 200
