"""The login throttle and the per-user rate limit kept in Redis, shared by every process.

Same policy as `app.services.throttle` (same numbers, same rules); only where the counters live
differs. Each decision is one Lua script, so it is atomic across processes: the check and the
charge of a login attempt cannot interleave with another process's, and N concurrent guesses
are N failures. The policy's arithmetic stays in Python: a counter's waits are handed to the
script as `Backoff.steps()` (the schedule as a table the script indexes by failures); the
scripts compare, look up and store.

Keys (``<prefix>:…``, see `RedisLink.key`; account and address are percent-encoded):

- ``login:pair:<account>:<address>``, ``login:addr:<address>``, ``login:acct:<account>``: hashes
  ``n`` (failures) and ``last`` (time of the latest), expiring `forget_after` after the latest
  failure, which is exactly when the policy forgets them;
- ``login:known:<account>:<address>``: the address logged into the account; expires
  `LoginPolicy.remember_addresses` after the latest such login;
- ``rate:<user>``: the user's token bucket (``tokens``, ``at``), expiring when it would be full.

Time is Redis's clock (``TIME`` inside the script): one clock for every process and machine,
whatever their own clocks say (wall clocks of machines drift apart, monotonic clocks are not
comparable between processes at all). Tests pass a `clock` instead, sent with each call.

While the link is down (`RedisLink.up` false, or a command fails or takes longer than
`REDIS_TIMEOUT`) each process falls back to its in-process throttle and limit: a login or a
request never fails because Redis is lost, it is only throttled per process meanwhile. When the
link is back the shared counters apply again (as Redis kept them; the in-process ones of the
outage are not merged into them).
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import TypeVar
from urllib.parse import quote

import trio
from coredis.commands import Script

from app.errors import Unauthenticated
from app.services.redis_link import REDIS_ERRORS, RedisLink
from app.services.throttle import (
    Backoff,
    Clock,
    InProcessLoginThrottle,
    LoginPolicy,
    LoginThrottle,
    RateLimit,
    TokenBucketRateLimit,
    rate_limit,
    too_many_logins,
    too_many_requests,
)

T = TypeVar("T")
REDIS_TIMEOUT = 2.0  # a command slower than this counts as Redis lost (fall back)

# Every number crosses as a string that reads back as the same double (`_num`), so with a given
# clock the scripts compute exactly what the in-process counters compute. (TIME before a write
# is allowed: Redis 5 and later replicate a script by its effects.)
_NOW = """
local function now_from(arg)
  if arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function num(x) return string.format('%.17g', x) end
"""

# KEYS: pair, address, account counters, known (the address logged into the account).
# ARGV: charge ('1': charge if not throttled, '0': only tell the wait), now ('' for TIME),
# then per counter: forget_after, free, steps (comma-separated), expiry in ms.
# Returns the wait in seconds ('0': not throttled, and charged if asked).
LOGIN_SCRIPT = (
    _NOW
    + """
local now = now_from(ARGV[2])
local exempt = redis.call('EXISTS', KEYS[4]) == 1
local wait = 0
local failures = {}
for i = 1, 3 do
  local at = 3 + 4 * (i - 1)
  local forget, free = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
  local state = redis.call('HMGET', KEYS[i], 'n', 'last')
  local n, last = tonumber(state[1]) or 0, tonumber(state[2]) or 0
  if n > 0 and now - last >= forget then n = 0 end
  failures[i] = n
  if n > free and not (i == 3 and exempt) then
    local steps = {}
    for step in string.gmatch(ARGV[at + 2], '[^,]+') do steps[#steps + 1] = tonumber(step) end
    wait = math.max(wait, last + steps[math.min(n - free, #steps)] - now)
  end
end
if wait > 0 or ARGV[1] ~= '1' then return num(wait) end
for i = 1, 3 do
  redis.call('HSET', KEYS[i], 'n', failures[i] + 1, 'last', num(now))
  redis.call('PEXPIRE', KEYS[i], ARGV[3 + 4 * (i - 1) + 3])
end
return '0'
"""
)

# KEYS: pair, address, account counters. Takes back one failure from each (the attempt was
# not a wrong password: the check itself failed).
REFUND_SCRIPT = """
for i = 1, 3 do
  local n = tonumber(redis.call('HGET', KEYS[i], 'n')) or 0
  if n > 1 then redis.call('HINCRBY', KEYS[i], 'n', -1) else redis.call('DEL', KEYS[i]) end
end
return 1
"""

# KEYS: pair, account counters, known. ARGV: how long to remember the address, in ms.
SUCCESS_SCRIPT = """
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SET', KEYS[3], '1', 'PX', ARGV[1])
return 1
"""

# KEYS: the bucket. ARGV: now ('' for TIME), capacity, tokens per second, expiry in ms.
# Returns the wait in seconds ('0': a token was taken).
RATE_SCRIPT = (
    _NOW
    + """
local now = now_from(ARGV[1])
local capacity, rate = tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]) or capacity, tonumber(state[2]) or now
tokens = math.min(capacity, tokens + (now - at) * rate)
if tokens < 1 then return num((1 - tokens) / rate) end
redis.call('HSET', KEYS[1], 'tokens', num(tokens - 1), 'at', num(now))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return '0'
"""
)


def _num(x: float) -> str:
    return repr(float(x))


def _ms(seconds: float) -> str:
    return str(max(1, math.ceil(seconds * 1000)))


def _part(text: str) -> str:
    return quote(text, safe="")


def _counter_args(backoff: Backoff) -> list[str]:
    steps = ",".join(_num(step) for step in backoff.steps())
    return [_num(backoff.forget_after), str(backoff.free), steps, _ms(backoff.forget_after)]


async def run_script(
    link: RedisLink, script: Script[bytes], keys: Sequence[str], args: Sequence[str]
) -> bytes | None:
    """The script's reply, or None when Redis is lost (now or by this call, which marks the
    link down so that the next calls fall back at once until a ping answers)."""
    if not link.up:
        return None
    with trio.move_on_after(REDIS_TIMEOUT):
        try:
            reply: object = await script(keys=list(keys), args=list(args))
        except REDIS_ERRORS as exc:
            link.lost(exc)
            return None
        return reply if isinstance(reply, bytes) else str(reply).encode()
    link.lost()
    return None


class RedisLoginThrottle:
    """`LoginThrottle` with its counters in Redis (in-process while the link is down)."""

    def __init__(
        self, link: RedisLink, policy: LoginPolicy | None = None, clock: Clock | None = None
    ) -> None:
        self._link = link
        self._policy = policy or LoginPolicy.from_limits()
        self._clock = clock
        self.fallback = InProcessLoginThrottle(self._policy, clock or time.monotonic)
        self._counter_args = [
            arg
            for backoff in (self._policy.pair, self._policy.address, self._policy.account)
            for arg in _counter_args(backoff)
        ]
        client = link.client
        self._login = client.register_script(LOGIN_SCRIPT)
        self._refund = client.register_script(REFUND_SCRIPT)
        self._success = client.register_script(SUCCESS_SCRIPT)

    def keys(self, account: str, address: str) -> list[str]:
        """The pair, address and account counters' keys and the known-address key."""
        account, address = _part(account.casefold()), _part(address)
        key = self._link.key
        return [
            key("login", "pair", account, address),
            key("login", "addr", address),
            key("login", "acct", account),
            key("login", "known", account, address),
        ]

    def _now(self) -> str:
        return "" if self._clock is None else _num(self._clock())

    async def _decide(self, keys: list[str], *, charge: bool) -> float | None:
        args = ["1" if charge else "0", self._now(), *self._counter_args]
        reply = await run_script(self._link, self._login, keys, args)
        return None if reply is None else float(reply)

    async def retry_after(self, account: str, address: str) -> float:
        """Seconds before this account may be tried from this address (0: now)."""
        wait = await self._decide(self.keys(account, address), charge=False)
        return self.fallback.retry_after(account, address) if wait is None else wait

    async def attempt(self, account: str, address: str, verify: Callable[[], Awaitable[T]]) -> T:
        keys = self.keys(account, address)
        wait = await self._decide(keys, charge=True)
        if wait is None:
            return await self.fallback.attempt(account, address, verify)
        if wait > 0:
            raise too_many_logins(wait)
        try:
            result = await verify()
        except Unauthenticated:
            raise  # a wrong password stays charged
        except BaseException:
            with trio.move_on_after(REDIS_TIMEOUT, shield=True):  # bounded, like every shield
                await run_script(self._link, self._refund, keys[:3], [])
            raise
        remember = _ms(self._policy.remember_addresses)
        await run_script(self._link, self._success, [keys[0], keys[2], keys[3]], [remember])
        return result


class RedisRateLimit:
    """`RateLimit`: the token bucket of `TokenBucketRateLimit`, kept in Redis (in-process
    while the link is down)."""

    def __init__(self, link: RedisLink, per_minute: int, clock: Clock | None = None) -> None:
        self._link = link
        self._clock = clock
        self.fallback = TokenBucketRateLimit(per_minute, clock or time.monotonic)
        capacity, rate = float(per_minute), per_minute / 60.0
        # an untouched bucket refills within capacity / rate: then it is as if it were not there
        self._args = [_num(capacity), _num(rate), _ms(capacity / rate)]
        self._script = link.client.register_script(RATE_SCRIPT)

    def key(self, key: Hashable) -> str:
        return self._link.key("rate", _part(str(key)))

    async def acquire(self, key: Hashable) -> None:
        now = "" if self._clock is None else _num(self._clock())
        reply = await run_script(self._link, self._script, [self.key(key)], [now, *self._args])
        if reply is None:
            return await self.fallback.acquire(key)
        wait = float(reply)
        if wait > 0:
            raise too_many_requests(wait)
        return None


def shared_login_throttle(policy: LoginPolicy, link: RedisLink | None) -> LoginThrottle:
    """The process's login throttle: shared through Redis when there is a link."""
    return InProcessLoginThrottle(policy) if link is None else RedisLoginThrottle(link, policy)


def shared_rate_limit(per_minute: int, link: RedisLink | None) -> RateLimit:
    """The limit for `FASTNPC_RATE_LIMIT_PER_MINUTE` (0: none), shared through Redis when there
    is a link."""
    if link is None or per_minute <= 0:
        return rate_limit(per_minute)
    return RedisRateLimit(link, per_minute)
