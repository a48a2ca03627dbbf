"""Storage throughput: "insert a message + read the last 50" through the async API.

For each backend and each concurrency level, N trio tasks (one user and
conversation each, pre-seeded with 50 messages) repeat the operation for a
fixed time through ``Database.write``/``Database.read``. Prints one JSON line
per run and a markdown table at the end.

    .venv/bin/python bench/storage_bench.py                      # SQLite (+ PostgreSQL if
    .venv/bin/python bench/storage_bench.py --postgres URL       #  FASTNPC_TEST_POSTGRES_URL)
    .venv/bin/python bench/storage_bench.py --tasks 1,16,64 --seconds 5

PostgreSQL runs in a throwaway schema of the given database, dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

import psycopg
import trio

from storage import Database, characters, conversations, messages, open_database, users

HISTORY = 50


@asynccontextmanager
async def temp_url(backend: str, postgres_url: str | None) -> AsyncIterator[str]:
    """A fresh database for one run: a SQLite file in a temp dir, or a PostgreSQL schema."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{Path(directory) / 'bench.db'}"
        return
    assert postgres_url is not None
    schema = f"bench_{secrets.token_hex(4)}"

    def execute(sql: str) -> None:
        with psycopg.connect(postgres_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql)

    await trio.to_thread.run_sync(execute, f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in postgres_url else "?"
    try:
        yield f"{postgres_url}{separator}options={quote(f'-csearch_path={schema}', safe='')}"
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(execute, f"DROP SCHEMA {schema} CASCADE")


async def seed(db: Database, n: int) -> list[int]:
    """One user, character and conversation per task, each with HISTORY messages."""
    conversation_ids = []
    for i in range(n):
        user = await db.write(users.create_user, f"bench{i}", "x")
        character = await db.write(characters.create_character, user.id, "NPC", {})
        conv = await db.write(conversations.get_or_create_direct, user.id, character.id)
        for j in range(HISTORY):
            await db.write(messages.add_message, conv.id, "user", f"seed {j}")
        conversation_ids.append(conv.id)
    return conversation_ids


async def run_one(backend: str, url: str, tasks: int, seconds: float, pool_size: int) -> dict:
    async with open_database(url, pool_size=pool_size) as db:
        conversation_ids = await seed(db, tasks)
        latencies: list[float] = []
        deadline = trio.current_time() + seconds

        async def worker(conversation_id: int) -> None:
            while trio.current_time() < deadline:
                start = time.perf_counter()
                await db.write(messages.add_message, conversation_id, "user", "hello there")
                page = await db.read(
                    messages.list_messages, conversation_id, limit=HISTORY, before=None
                )
                assert len(page.items) == HISTORY
                latencies.append(time.perf_counter() - start)

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for conversation_id in conversation_ids:
                nursery.start_soon(worker, conversation_id)
        elapsed = time.perf_counter() - started
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return {
        "bench": "storage_insert_and_read_last_50",
        "backend": backend,
        "tasks": tasks,
        "pool_size": pool_size,
        "seconds": round(elapsed, 2),
        "ops": len(latencies),
        "ops_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(quantiles[49] * 1000, 2),
        "p95_ms": round(quantiles[94] * 1000, 2),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=os.environ.get("FASTNPC_TEST_POSTGRES_URL"))
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--tasks", default="1,16,64", help="comma-separated concurrency levels")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each run")
    parser.add_argument("--pool-size", type=int, default=10)
    args = parser.parse_args()

    backends = [b for b in args.backends.split(",") if b != "postgresql" or args.postgres]
    results = []
    for backend in backends:
        for tasks in (int(t) for t in args.tasks.split(",")):
            async with temp_url(backend, args.postgres) as url:
                result = await run_one(backend, url, tasks, args.seconds, args.pool_size)
            print(json.dumps(result), flush=True)
            results.append(result)

    print()
    print("| backend | tasks | pool | ops/s | p50 ms | p95 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['backend']} | {r['tasks']} | {r['pool_size']} | {r['ops_per_s']} "
            f"| {r['p50_ms']} | {r['p95_ms']} |"
        )


if __name__ == "__main__":
    trio.run(main)
