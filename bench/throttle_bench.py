"""Cost of a login-throttle check and a rate-limit check, in-process and through Redis.

    python bench/throttle_bench.py [--redis redis://127.0.0.1:6379/0] [--rounds 5000]

Times a PING through the same client (the baseline: one round trip), then, one after the other
(latency, one connection) and with 50 tasks at once (throughput): a failed login attempt (check
and charge of three counters, the password check a no-op) and a rate-limit acquire, with
`InProcessLoginThrottle` / `TokenBucketRateLimit` and with `RedisLoginThrottle` /
`RedisRateLimit` (Redis's TIME as the clock, as in production). Keys go under a fresh prefix
and are deleted afterwards.
"""

from __future__ import annotations

import argparse
import secrets
import time
from collections.abc import Awaitable, Callable

import trio

from app.errors import RateLimited, Unauthenticated
from app.services.redis_link import open_redis
from app.services.redis_throttle import RedisLoginThrottle, RedisRateLimit
from app.services.throttle import (
    Backoff,
    InProcessLoginThrottle,
    LoginPolicy,
    LoginThrottle,
    RateLimit,
    TokenBucketRateLimit,
)

# Never throttled, so every attempt is charged (the costlier path).
LENIENT = Backoff(free=10**9, base=1.0, cap=1.0, forget_after=900.0)
POLICY = LoginPolicy(pair=LENIENT, address=LENIENT, account=LENIENT)


async def wrong() -> None:
    raise Unauthenticated("wrong username or password", code="invalid_credentials")


def login_check(throttle: LoginThrottle) -> Callable[[int], Awaitable[None]]:
    async def check(i: int) -> None:
        try:
            await throttle.attempt(f"user{i % 100}", f"10.0.{i % 7}.1", wrong)
        except Unauthenticated:
            pass

    return check


def rate_check(limit: RateLimit) -> Callable[[int], Awaitable[None]]:
    async def check(i: int) -> None:
        try:
            await limit.acquire(i % 100)
        except RateLimited:
            pass

    return check


async def sequential(check: Callable[[int], Awaitable[None]], rounds: int) -> float:
    start = time.perf_counter()
    for i in range(rounds):
        await check(i)
    return (time.perf_counter() - start) / rounds * 1e6


async def concurrent(check: Callable[[int], Awaitable[None]], rounds: int, tasks: int) -> float:
    async def worker(w: int) -> None:
        for i in range(w, rounds, tasks):
            await check(i)

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for w in range(tasks):
            nursery.start_soon(worker, w)
    return (time.perf_counter() - start) / rounds * 1e6


async def main(url: str, rounds: int) -> None:
    prefix = f"bench-{secrets.token_hex(4)}"
    try:
        async with open_redis(url, prefix=prefix) as link:
            assert link is not None
            client = link.client

            async def ping(i: int) -> None:
                await client.ping()

            cases = {
                "Redis PING (a round trip)": ping,
                "login, in-process": login_check(InProcessLoginThrottle(POLICY)),
                "login, Redis": login_check(RedisLoginThrottle(link, POLICY)),
                "rate limit, in-process": rate_check(TokenBucketRateLimit(10**6)),
                "rate limit, Redis": rate_check(RedisRateLimit(link, 10**6)),
            }
            print(f"{'check':<26} {'µs each, sequential':>20} {'µs each, 50 at once':>20}")
            for name, check in cases.items():
                await check(0)  # warm (script load)
                one = await sequential(check, rounds)
                many = await concurrent(check, rounds, 50)
                print(f"{name:<26} {one:>20.1f} {many:>20.1f}")
    finally:
        async with open_redis(url, prefix=prefix) as link:
            assert link is not None
            keys = [key async for key in link.client.scan_iter(match=f"{prefix}:*")]
            if keys:
                await link.client.delete(keys)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--rounds", type=int, default=5000)
    args = parser.parse_args()
    trio.run(main, args.redis, args.rounds)
