"""CPU of the database side per chat send, in process (issue 17).

The real services (`run_services`) against the fake upstream (zero latency, a few tokens), no
HTTP in front: ``--conversations`` tasks, one user, character and conversation each, send
``--sends`` messages one after another through `ChatService.send` and wait for each reply (the
token comes from the token cache, as on the hot path, so the first transaction confirms it).
Measured over the sends only (warm-up sends and seeding excluded):

* ``db_cpu_us``: CPU time of the database worker threads per send (``time.thread_time``
  around every `Database` transaction: the claim transaction, the save transaction, the
  lease poller's renewals);
* ``process_cpu_us``: CPU time of the whole process per send (event loop and fake upstream
  included);
* ``statements``: statements per send sent to the driver (``control``: transaction control,
  ``BEGIN``/``COMMIT``/``SAVEPOINT``/``RELEASE`` and the pool's pre-ping, counted apart).
  SQLite: each connection's trace callback; PostgreSQL: a counting cursor class (psycopg
  sends ``BEGIN`` and ``COMMIT`` itself: not counted there).

    .venv/bin/python -m bench.send_bench                       # SQLite (+ PostgreSQL with
    .venv/bin/python -m bench.send_bench --backends sqlite     #  FASTNPC_TEST_POSTGRES_URL)
    .venv/bin/python -m bench.send_bench --trace               # also print one send's SQL
    .venv/bin/python -m bench.send_bench --profile 40          # cProfile (thread CPU) of the
                                                               #  database threads
A/B against another checkout (e.g. ``git archive main | tar -x -C /tmp/main``): copy this file
into its ``bench/`` and run it there with ``PYTHONPATH=/tmp/main``, alternating with this
checkout; it only uses what both have.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import secrets
import sqlite3
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import psycopg
import trio
from sqlalchemy import Connection, event
from sqlalchemy.pool import Pool

from app.services.auth import hash_token
from app.services.container import Services, run_services
from app.settings import Settings
from bench.storage_bench import temp_url
from llm import FakeBehaviour, LLMSettings, serve_fake_upstream
from storage import Database, characters, tokens, users

T = TypeVar("T")

CHAT_TEXT = "Hello! Tell me about yourself in a few sentences."
PROFILE: dict[str, dict[str, Any] | None] = {
    "identity": {"name": "Bench", "occupation": "innkeeper"},
    "personality": {"traits": "warm, curious"},
    "backstory": {"origin": "the valley"},
}
CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


class Meter:
    """Database-thread CPU (around `Database._run`) and driver statements, while enabled."""

    def __init__(self) -> None:
        self.enabled = False
        self.db_cpu = 0.0
        self.statements: Counter[str] = Counter()
        self.trace: list[str] | None = None
        self.profile = False  # cProfile the database threads (`stats`)
        self._profiles: dict[int, cProfile.Profile] = {}
        self._lock = threading.Lock()

    def stats(self) -> pstats.Stats | None:
        profiles = list(self._profiles.values())
        if not profiles:
            return None
        stats = pstats.Stats(profiles[0])
        for profile in profiles[1:]:
            stats.add(profile)
        return stats

    def statement(self, sql: str) -> None:
        if not self.enabled:
            return
        head = sql.lstrip().split(None, 1)[0].upper() if sql.strip(" ;") else "BEGIN"
        kind = "control" if head in CONTROL else "other"  # (";": psycopg's pre-ping)
        with self._lock:
            self.statements[kind] += 1
            if self.trace is not None:
                self.trace.append(" ".join(sql.split())[:160])

    def install(self) -> None:
        original = Database._run
        meter = self

        def _run(db: Database, write: bool, fn: Callable[[Connection], T]) -> T:
            if not meter.enabled:
                return original(db, write, fn)
            profile = None
            if meter.profile:
                profile = meter._profiles.setdefault(
                    threading.get_ident(), cProfile.Profile(time.thread_time)
                )
                profile.enable()
            start = time.thread_time()
            try:
                return original(db, write, fn)
            finally:
                spent = time.thread_time() - start
                if profile is not None:
                    profile.disable()
                with meter._lock:
                    meter.db_cpu += spent

        Database._run = _run  # type: ignore[method-assign]

    def watch(self) -> None:
        """Count what every new pooled connection sends to the driver while enabled."""
        meter = self

        class CountingCursor(psycopg.Cursor[Any]):
            def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
                meter.statement(str(query))
                return super().execute(query, *args, **kwargs)

        def connect(dbapi_connection: Any, _record: Any) -> None:
            if isinstance(dbapi_connection, sqlite3.Connection):
                dbapi_connection.set_trace_callback(meter.statement)
            elif isinstance(dbapi_connection, psycopg.Connection):
                dbapi_connection.cursor_factory = CountingCursor

        event.listen(Pool, "connect", connect)


async def seed(db: Database, n: int) -> list[tuple[str, int]]:
    """``(bearer token, character id)`` for ``n`` fresh users."""
    out = []
    for i in range(n):
        user = await db.write(users.create_user, f"sendbench{i}", "x")
        token = secrets.token_urlsafe(16)
        expires = datetime.now(UTC) + timedelta(days=1)
        await db.write(tokens.create_token, user.id, hash_token(token), expires)
        character = await db.write(characters.create_character, user.id, "NPC", PROFILE)
        out.append((token, character.id))
    return out


async def send(services: Services, token: str, character_id: int) -> None:
    access = await services.auth.access(f"Bearer {token}")
    run = await services.chat.send(access, character_id, CHAT_TEXT)
    await run.wait()


async def run_one(
    backend: str, url: str, conversations: int, sends: int, meter: Meter, trace: bool
) -> dict[str, Any]:
    behaviour = FakeBehaviour(
        first_token_delay=0.0, tokens=5, tokens_per_second=0.0, keepalive_interval=0.0
    )
    async with trio.open_nursery() as nursery:
        fake = await nursery.start(partial(serve_fake_upstream, behaviour=behaviour))
        settings = Settings(
            database_url=url,
            spool_dir=None,
            memory_trigger_messages=100_000,  # no compression jobs in the window
            llm=LLMSettings(api_key="bench", base_url=fake.base_url),
        )
        stop = trio.Event()
        services: Services = await nursery.start(partial(run_services, settings, stop=stop))
        seeded = await seed(services.db, conversations)
        async with trio.open_nursery() as warm:  # opens the conversations, caches the tokens
            for token, character_id in seeded:
                warm.start_soon(send, services, token, character_id)
        if trace:
            meter.trace = []
            meter.enabled = True
            await send(services, *seeded[0])
            meter.enabled = False
            print("\n".join(meter.trace))
            meter.trace = None
            meter.statements.clear()
            meter.db_cpu = 0.0

        async def worker(token: str, character_id: int) -> None:
            for _ in range(sends):
                await send(services, token, character_id)

        meter.enabled = True
        cpu0, wall0 = time.process_time(), time.perf_counter()
        async with trio.open_nursery() as work:
            for token, character_id in seeded:
                work.start_soon(worker, token, character_id)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        meter.enabled = False
        stop.set()
        nursery.cancel_scope.cancel()
    total = conversations * sends
    result = {
        "bench": "chat_send_db_cpu",
        "backend": backend,
        "conversations": conversations,
        "sends": total,
        "db_cpu_us": round(meter.db_cpu / total * 1e6),
        "process_cpu_us": round(cpu / total * 1e6),
        "wall_s": round(wall, 2),
        "statements": round(meter.statements["other"] / total, 2),
        "control": round(meter.statements["control"] / total, 2),
    }
    meter.db_cpu = 0.0
    meter.statements.clear()
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=os.environ.get("FASTNPC_TEST_POSTGRES_URL"))
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--conversations", type=int, default=32)
    parser.add_argument("--sends", type=int, default=10, help="per conversation")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--trace", action="store_true", help="print one send's statements")
    parser.add_argument("--profile", type=int, default=0, help="print N cProfile lines")
    args = parser.parse_args()

    meter = Meter()
    meter.install()
    meter.watch()
    meter.profile = args.profile > 0
    backends = [b for b in args.backends.split(",") if b != "postgresql" or args.postgres]
    results: dict[str, list[dict[str, Any]]] = {}
    for _ in range(args.repeat):
        for backend in backends:
            async with temp_url(backend, args.postgres) as url:
                result = await run_one(
                    backend, url, args.conversations, args.sends, meter, args.trace
                )
            print(json.dumps(result), flush=True)
            results.setdefault(backend, []).append(result)
    for backend, runs in results.items():
        median = {
            key: statistics.median(r[key] for r in runs)
            for key in ("db_cpu_us", "process_cpu_us", "statements", "control")
        }
        print(json.dumps({"backend": backend, "median_of": len(runs)} | median))
    stats = meter.stats()
    if stats is not None:
        stats.sort_stats("cumulative").print_stats(args.profile)
        stats.sort_stats("tottime").print_stats(args.profile)


if __name__ == "__main__":
    trio.run(main)
