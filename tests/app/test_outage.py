"""Outages of a PostgreSQL server of the test's own (tests/pgserver.py), never the shared one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import trio

from app.services.supervisor import SupervisorPolicy
from tests.app.harness import live_server, make_settings
from tests.pgserver import PgServer, pg_server


@pytest.fixture
def own_pg() -> Iterator[PgServer]:
    with pg_server() as server:
        yield server


async def test_readyz_follows_the_database_back(own_pg: PgServer, fake: Any) -> None:
    async with live_server(make_settings(own_pg.url, fake.base_url)) as live:
        assert (await live.client.get("/readyz")).status_code == 200
        supervisor = live.services.memory.supervisor
        supervisor.policy = SupervisorPolicy(
            initial_backoff=0.01, max_backoff=0.05, jitter=0, degraded_after=3
        )
        await trio.to_thread.run_sync(own_pg.stop)
        live.services.memory.wake()
        with trio.fail_after(30):  # workers crash on the database until degraded
            await supervisor.wait_for(lambda: supervisor.degraded)
        r = await live.client.get("/readyz")
        assert r.status_code == 503 and r.json()["checks"]["database"] != "ok"
        # a long outage: every worker now waits out a long backoff
        supervisor.policy.initial_backoff = supervisor.policy.max_backoff = 3600
        workers = supervisor.workers.values()
        before = {w.name: w.crashes for w in workers}
        with trio.fail_after(30):
            await supervisor.wait_for(
                lambda: all(w.crashes > before[w.name] and w.backoff is not None for w in workers)
            )
        await trio.to_thread.run_sync(own_pg.start)
        with trio.fail_after(10):  # ready within moments of the database's return
            for _ in range(100):  # a probe every 50 ms or so, bounded
                r = await live.client.get("/readyz")
                if r.status_code == 200:
                    break
                await trio.sleep(0.05)
        assert r.status_code == 200, r.text
        assert r.json()["checks"]["memory_workers"]["status"] == "ok"
