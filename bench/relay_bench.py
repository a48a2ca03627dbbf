"""What publishing a generation's events to Redis costs the process that runs it.

    .venv/bin/python -m bench.relay_bench --generations 1000 --events 100

`G` event logs (generations) each publish `E` `delta` events, one event per log per round, the
rounds back to back (as streams interleave in a loaded process). Two arms in one run, the same
events: the logs alone (what every process does), and the logs attached to an `EventRelay`
writing to Redis (what a process with `FASTNPC_REDIS_URL` does on top). Reported: the process
CPU per event of each arm and the difference (the publishing overhead per delta), the wall
time, and how many pipelined round trips carried the events (batches grow with the load).
"""

from __future__ import annotations

import argparse
import secrets
import time
from typing import Any

import trio
import trio.lowlevel

from app.services.event_relay import EventRelay
from app.services.events import EventLog
from app.services.redis_link import delete_keys, open_redis


async def _arm(relay: EventRelay | None, generations: int, events: int) -> dict[str, float]:
    logs = [EventLog(base=(i + 1) * 1_000_000) for i in range(generations)]
    if relay is not None:
        for i, log in enumerate(logs):
            relay.attach(i + 1, log, {"conversation_id": i + 1, "kind": "chat"})
    flushes_before = 0 if relay is None else relay.flushes
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(events):
        for log in logs:
            log.publish("delta", {"text": "abcd"})
        await (
            trio.lowlevel.checkpoint()
        )  # streams interleave: the relay task gets its turn between rounds
    for log in logs:
        log.publish("done", {})
    if relay is not None:
        await relay.wait_idle()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    count = generations * (events + 1)
    return {
        "events": count,
        "cpu_us_per_event": round(cpu / count * 1e6, 2),
        "wall_s": round(wall, 3),
        "round_trips": 0 if relay is None else relay.flushes - flushes_before,
    }


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    prefix = f"bench-{secrets.token_hex(4)}"
    results: list[dict[str, Any]] = []
    async with open_redis(args.redis_url, prefix=prefix) as link, trio.open_nursery() as n:
        assert link is not None
        relay = EventRelay(link, retention=60)
        await n.start(relay.run)
        for repeat in range(args.repeat):
            alone = await _arm(None, args.generations, args.events)
            relayed = await _arm(relay, args.generations, args.events)
            results.append(
                {
                    "repeat": repeat,
                    "logs_only": alone,
                    "with_redis": relayed,
                    "overhead_us_per_event": round(
                        relayed["cpu_us_per_event"] - alone["cpu_us_per_event"], 2
                    ),
                }
            )
            print(results[-1], flush=True)
        await delete_keys(link.client, prefix)
        n.cancel_scope.cancel()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.relay_bench", description=__doc__)
    parser.add_argument("--generations", type=int, default=1000)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    trio.run(main_async, parser.parse_args())


if __name__ == "__main__":
    main()
