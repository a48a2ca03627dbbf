"""Cost of an LLM slot: acquire + release through the shared (Redis) limiter vs the process's
`llm.LLMLimiter`.

    .venv/bin/python -m bench.limiter_bench                 # a private redis-server on TCP
    .venv/bin/python -m bench.limiter_bench --calls 5000 --url redis://127.0.0.1:6379/0

Per arm: wall µs per slot (acquire + release, nothing held in between), and for the shared
limiter the round trips per slot (script calls, from ``INFO commandstats`` deltas) and the
commands Redis ran for them (inside the scripts included). Arms: one task taking slots one
after another (latency), 50 tasks with room for all (throughput), 50 tasks over 8 slots
(waiting: queue, release notices, admission rounds). For scale: a bare coredis PING on Trio
costs ~350 µs here, the C client's (redis-benchmark) ~20 µs.
With --url the keys go under a fresh prefix and are deleted after; a shared server's other
clients add to the command counts.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from app.services.redis_link import REDIS_ERRORS, RedisLink, make_client, open_redis
from app.services.shared_limiter import SharedLLMLimiter
from bench.procs import free_port
from llm import Limiter, LLMLimiter


@asynccontextmanager
async def private_server() -> AsyncIterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (or pass --url)")
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        process = await trio.lowlevel.open_process(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory]
            + ["--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        try:
            url = f"redis://127.0.0.1:{port}/0"
            client = make_client(url)
            with trio.fail_after(10):
                while True:
                    try:
                        async with client:
                            await client.ping()
                        break
                    except REDIS_ERRORS:
                        await trio.sleep(0.05)
            yield url
        finally:
            process.kill()
            await process.wait()


async def commands(link: RedisLink) -> dict[str, int]:
    info: Any = await link.client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(stats["calls"])
        for name, stats in info.items()
        if name.startswith("cmdstat_")
    }


async def run_arm(limiter: Limiter, *, tasks: int, calls: int) -> float:
    """Wall seconds for ``tasks`` tasks taking ``calls`` slots each, one after another."""

    async def worker(i: int) -> None:
        for _ in range(calls):
            async with limiter.slot(f"user{i % 10}"):
                pass

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for i in range(tasks):
            nursery.start_soon(worker, i)
    return time.perf_counter() - start


ARMS = (("sequential", 1, 64), ("50 tasks, room", 50, 64), ("50 tasks over 8 slots", 50, 8))


async def main(url: str, calls: int) -> None:
    print("| arm | limiter | µs per slot | round trips per slot | commands run by Redis per slot |")
    print("|---|---|---|---|---|")
    for name, tasks, total in ARMS:
        per_task = max(1, calls // tasks)
        n = per_task * tasks
        local = LLMLimiter(total, per_user=1000, queue_timeout=60)
        seconds = await run_arm(local, tasks=tasks, calls=per_task)
        print(f"| {name} | local | {seconds / n * 1e6:.1f} | 0 | 0 |")
        async with redis_for(url) as link, trio.open_nursery() as nursery:
            shared = SharedLLMLimiter(link, total, per_user=1000, queue_timeout=60, lease=10)
            await nursery.start(shared.run)
            await run_arm(shared, tasks=tasks, calls=max(1, per_task // 10))  # warm up
            before = await commands(link)
            seconds = await run_arm(shared, tasks=tasks, calls=per_task)
            after = await commands(link)
            nursery.cancel_scope.cancel()
        counted = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        counted["info"] = counted.get("info", 0) - 1
        # a script call is one round trip; the commands it runs inside Redis count too
        trips = sum(counted.get(k, 0) for k in ("evalsha", "eval", "script|load", "ping"))
        inside = sum(v for v in counted.values() if v > 0)
        print(
            f"| {name} | shared | {seconds / n * 1e6:.1f} | {trips / n:.2f} | {inside / n:.1f} |"
        )


@asynccontextmanager
async def redis_for(url: str) -> AsyncIterator[RedisLink]:
    """A link under a fresh prefix; its keys deleted after."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    async with open_redis(url, prefix=prefix) as link:
        assert link is not None
        try:
            yield link
        finally:
            keys = [k async for k in link.client.scan_iter(match=f"{prefix}:*")]
            if keys:
                await link.client.delete(keys)


async def entry(url: str | None, calls: int) -> None:
    if url is not None:
        await main(url, calls)
        return
    async with private_server() as private:
        await main(private, calls)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an existing Redis (default: a private redis-server)")
    parser.add_argument("--calls", type=int, default=5000, help="slots per arm")
    args = parser.parse_args()
    trio.run(entry, args.url, args.calls)
