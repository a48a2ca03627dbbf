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


async def test_replies_streaming_through_an_outage_are_kept_and_saved(
    own_pg: PgServer, fake: Any, tmp_path: Any
) -> None:
    """PostgreSQL stops while 20 replies stream and stays down longer than the save grace;
    every stream ends saying its reply is kept, and once the database is back every reply is
    stored (with the spool directory, durably)."""
    settings = make_settings(own_pg.url, fake.base_url, spool_dir=tmp_path / "spool")
    async with live_server(settings) as live:
        users = [await live.register(f"user{i}") for i in range(20)]
        paths = []
        for i, user in enumerate(users):
            character = await user.character(f"C{i}")
            paths.append(f"/api/characters/{character['id']}/chat")
        started = trio.Event()
        begun = 0
        endings: list[dict[str, Any]] = []

        async def chat(i: int) -> None:
            nonlocal begun
            slow = "[[fake:ttft=0.1]] [[fake:tps=20]] [[fake:tokens=40]] tell me"
            async with users[i].stream(paths[i], {"content": slow}) as sse:
                async for _, name, data in sse:
                    if name == "delta" and i not in seen:
                        seen.add(i)
                        begun += 1
                        if begun == len(users):
                            started.set()
                    if name in ("done", "error"):
                        endings.append({"event": name} | data)

        seen: set[int] = set()
        async with trio.open_nursery() as nursery:
            for i in range(len(users)):
                nursery.start_soon(chat, i)
            with trio.fail_after(60):
                await started.wait()
            await trio.to_thread.run_sync(own_pg.stop)  # every reply is mid-stream
        assert len(endings) == len(users)
        assert all(e["event"] == "error" and e["code"] == "storage_unavailable" for e in endings)
        assert all(e.get("kept") is True and e["reply"]["content"] for e in endings)
        assert live.services.spool.pending == len(users)
        await trio.to_thread.run_sync(own_pg.start)
        with trio.fail_after(60):
            await live.services.spool.wait_empty()
        for user, path in zip(users, paths, strict=True):
            r = await user.request("GET", f"{path}/messages")
            items = r.json()["items"]
            assert [m["role"] for m in items] == ["user", "assistant"], items
            assert items[1]["status"] == "complete" and items[1]["content"]
