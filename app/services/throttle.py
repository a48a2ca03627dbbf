"""Login throttling and per-user request rate limits: the policy, and its in-process form.

Both are behind small interfaces (`LoginThrottle`, `RateLimit`). This module holds the policy
(`Backoff`, `LoginPolicy`, the token bucket's numbers) and the in-process implementations (one
process's view); `app.services.redis_throttle` keeps the same counters in Redis, so that with
``FASTNPC_REDIS_URL`` every process of the service shares them (N processes do not give an
attacker N times the attempts), and falls back to these in-process ones while Redis is lost.
Time comes from an injectable `clock`, so tests are exact.

Login throttling throttles, it never locks: each failed attempt is charged (before the password
is checked, so concurrent guesses count) to three counters, and a counter past its free
attempts imposes an exponentially growing, capped wait between attempts (429 `rate_limited`
with `Retry-After`). Failures are forgotten after a quiet period.

- account and address together: the brake on guessing one account from one place;
- address alone (all accounts): the brake on trying many accounts from one place;
- account alone (all addresses): the brake on guessing one account from many places. Its cap is
  short, and an address that has logged into the account before is exempt, so an attacker
  elsewhere can slow the owner down by at most that cap per attempt and never lock them out.

A successful login clears its (account, address) and account counters, never the address
counter (else logging into one's own account would clear a guessing address's record), and
remembers the address as one that logged into the account (`LoginPolicy.remember_addresses`).

The rate limit is a token bucket per user: `FASTNPC_RATE_LIMIT_PER_MINUTE` requests a minute,
in bursts of up to as many.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from app.errors import RateLimited, Unauthenticated

Clock = Callable[[], float]
T = TypeVar("T")
MAX_KEYS = 100_000


@dataclass(frozen=True)
class Backoff:
    """No wait for the first `free` failures, then `base` seconds doubling up to `cap`."""

    free: int
    base: float
    cap: float
    forget_after: float

    def delay(self, failures: int) -> float:
        if failures <= self.free:
            return 0.0
        return min(self.cap, self.base * 2.0 ** min(failures - self.free - 1, 62))

    def steps(self) -> list[float]:
        """`delay(free + i)` for i = 1, 2, ... up to the first that reaches the cap (every
        later one is the cap): the whole schedule as a table, for a shared counter that looks
        the wait up where the failures are counted (`redis_throttle`)."""
        steps = [self.delay(self.free + 1)]
        while steps[-1] < self.cap and len(steps) < 64:
            steps.append(self.delay(self.free + len(steps) + 1))
        return steps


class FailureCounter:
    """Failures per key with `Backoff`; least recently failed keys are dropped past `max_keys`."""

    def __init__(self, backoff: Backoff, clock: Clock, max_keys: int = MAX_KEYS) -> None:
        self._backoff = backoff
        self._clock = clock
        self._max_keys = max_keys
        self._entries: OrderedDict[Hashable, tuple[int, float]] = OrderedDict()

    def _failures(self, key: Hashable, now: float) -> tuple[int, float]:
        failures, last = self._entries.get(key, (0, 0.0))
        if failures and now - last >= self._backoff.forget_after:
            del self._entries[key]
            return 0, 0.0
        return failures, last

    def retry_after(self, key: Hashable) -> float:
        """Seconds until `key` may try again (0: now)."""
        now = self._clock()
        failures, last = self._failures(key, now)
        return max(0.0, last + self._backoff.delay(failures) - now)

    def charge(self, key: Hashable) -> None:
        now = self._clock()
        failures, _ = self._failures(key, now)
        self._entries[key] = (failures + 1, now)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_keys:
            self._entries.popitem(last=False)

    def refund(self, key: Hashable) -> None:
        failures, last = self._entries.get(key, (0, 0.0))
        if failures > 1:
            self._entries[key] = (failures - 1, last)
        else:
            self._entries.pop(key, None)

    def clear(self, key: Hashable) -> None:
        self._entries.pop(key, None)


class LoginThrottle(Protocol):
    """Decides whether a login attempt may proceed and learns from its outcome."""

    async def attempt(self, account: str, address: str, verify: Callable[[], Awaitable[T]]) -> T:
        """Run `verify` (the password check) unless throttled (`RateLimited`)."""
        ...


@dataclass(frozen=True)
class LoginPolicy:
    """The three counters' backoffs, and how long an address that logged into an account is
    remembered as exempt from the account-wide counter (kept by the shared throttle; the
    in-process one keeps the latest `MAX_KEYS`)."""

    pair: Backoff
    address: Backoff
    account: Backoff
    remember_addresses: float = 90 * 86400.0

    @classmethod
    def from_limits(
        cls, free: int = 5, max_delay: float = 300.0, account_max_delay: float = 30.0
    ) -> LoginPolicy:
        """`free` failures per (account, address), 10x per address, 4x per account; waits
        from 1 s doubling to `max_delay` (`account_max_delay` account-wide)."""
        return cls(
            pair=Backoff(free, 1.0, max_delay, forget_after=max(900.0, 3 * max_delay)),
            address=Backoff(10 * free, 1.0, max_delay, forget_after=max(3600.0, 3 * max_delay)),
            account=Backoff(4 * free, 1.0, account_max_delay, forget_after=900.0),
        )


def too_many_logins(wait: float) -> RateLimited:
    return RateLimited(f"too many failed logins; retry in {math.ceil(wait)} s", retry_after=wait)


class InProcessLoginThrottle:
    """`LoginThrottle` with counters in this process."""

    def __init__(self, policy: LoginPolicy | None = None, clock: Clock = time.monotonic) -> None:
        policy = policy or LoginPolicy.from_limits()
        self._pair = FailureCounter(policy.pair, clock)
        self._address = FailureCounter(policy.address, clock)
        self._account = FailureCounter(policy.account, clock)
        self._known: OrderedDict[tuple[str, str], None] = OrderedDict()

    def retry_after(self, account: str, address: str) -> float:
        """Seconds before this account may be tried from this address (0: now)."""
        account = account.casefold()
        waits = [self._pair.retry_after((account, address)), self._address.retry_after(address)]
        if (account, address) not in self._known:
            waits.append(self._account.retry_after(account))
        return max(waits)

    async def attempt(self, account: str, address: str, verify: Callable[[], Awaitable[T]]) -> T:
        wait = self.retry_after(account, address)
        if wait > 0:
            raise too_many_logins(wait)
        key = account.casefold()
        keys = ((self._pair, (key, address)), (self._address, address), (self._account, key))
        for counter, counter_key in keys:
            counter.charge(counter_key)
        try:
            result = await verify()
        except Unauthenticated:
            raise  # a wrong password stays charged
        except BaseException:
            for counter, counter_key in keys:
                counter.refund(counter_key)
            raise
        self._pair.clear((key, address))
        self._account.clear(key)
        self._known[(key, address)] = None
        self._known.move_to_end((key, address))
        while len(self._known) > MAX_KEYS:
            self._known.popitem(last=False)
        return result


class RateLimit(Protocol):
    """Requests per key (a user) on the expensive routes."""

    async def acquire(self, key: Hashable) -> None:
        """Take one request's allowance or raise `RateLimited`."""
        ...


class Unlimited:
    """`RateLimit` that never limits (`FASTNPC_RATE_LIMIT_PER_MINUTE=0`)."""

    async def acquire(self, key: Hashable) -> None:
        return None


def too_many_requests(wait: float) -> RateLimited:
    return RateLimited(f"too many requests; retry in {math.ceil(wait)} s", retry_after=wait)


class TokenBucketRateLimit:
    """`per_minute` requests per key per minute, with bursts up to `per_minute`."""

    def __init__(self, per_minute: int, clock: Clock = time.monotonic) -> None:
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._clock = clock
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()

    async def acquire(self, key: Hashable) -> None:
        now = self._clock()
        tokens, then = self._buckets.get(key, (self._capacity, now))
        tokens = min(self._capacity, tokens + (now - then) * self._rate)
        if tokens < 1.0:
            raise too_many_requests((1.0 - tokens) / self._rate)
        self._buckets[key] = (tokens - 1.0, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > MAX_KEYS:  # the oldest is the fullest: forgetting it is fair
            self._buckets.popitem(last=False)


def rate_limit(per_minute: int, clock: Clock = time.monotonic) -> RateLimit:
    """The limit for `FASTNPC_RATE_LIMIT_PER_MINUTE` (0: none)."""
    return TokenBucketRateLimit(per_minute, clock) if per_minute > 0 else Unlimited()
