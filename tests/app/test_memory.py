"""Memory compression: trigger, summaries, merge, messages arriving meanwhile, retries,
failures, worker crashes under the supervisor, and jobs surviving a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import trio
from sqlalchemy import Connection, select

from app.services.supervisor import SupervisorPolicy
from llm.fake import Fault
from storage import StorageUnavailable, conversations, jobs
from storage.schema import jobs as table
from tests.app.harness import Live, Session, admin_session, live_server, settings_with_admin


@asynccontextmanager
async def server(db_url: str, fake: Any, **overrides: Any) -> AsyncIterator[Live]:
    """A live server compressing early (4 messages, 2 kept), with the configured admin."""
    settings = settings_with_admin(
        db_url,
        fake.base_url,
        **{"memory_trigger_messages": 4, "memory_keep_recent": 2, **overrides},
    )
    async with live_server(settings) as live:
        yield live


async def chat(s: Session, cid: str, content: str) -> dict[str, Any]:
    r = await s.request("POST", f"/api/characters/{cid}/chat", json={"content": content})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def history(s: Session, cid: str) -> list[dict[str, Any]]:
    r = await s.request("GET", f"/api/characters/{cid}/chat/messages", params={"limit": 200})
    return r.json()["items"]  # type: ignore[no-any-return]


async def memories(s: Session, cid: str) -> list[dict[str, Any]]:
    r = await s.request("GET", f"/api/characters/{cid}/chat/memories")
    assert r.status_code == 200, r.text
    return r.json()["items"]  # type: ignore[no-any-return]


async def idle(live: Live) -> None:
    with trio.fail_after(20):
        await live.services.memory.wait_idle()


def summary_requests(fake: Any) -> list[Any]:
    return [r for r in fake.requests if r.messages[-1]["content"].startswith("MEMORY SUMMARY")]


async def test_compression_triggers_and_prompts_use_memories(db_url: str, fake: Any) -> None:
    async with server(db_url, fake) as live:
        alice = await live.register()
        mira = await alice.character("Mira")
        for i in range(3):  # 6 messages > trigger 4
            await chat(alice, mira["id"], f"fact number {i}")
        await idle(live)
        mems = await memories(alice, mira["id"])
        assert mems and all(m["kind"] == "short_term" and m["content"] for m in mems)
        items = await history(alice, mira["id"])
        assert [m["compressed"] for m in items] == [True] * 4 + [False] * 2
        # the summary saw exactly the four oldest messages
        (request,) = summary_requests(fake)
        transcript = request.messages[-1]["content"]
        assert "User: fact number 0" in transcript and "User: fact number 1" in transcript
        assert "fact number 2" not in transcript
        assert "Mira: " in transcript
        # the next reply's prompt has the memories instead of the compressed messages
        since = len(fake.requests)
        await chat(alice, mira["id"], "do you remember?")
        prompt = fake.requests[since].messages
        assert all(m["content"] in prompt[0]["content"] for m in mems)
        sent = [m["content"] for m in prompt[1:]]
        assert "fact number 0" not in sent and "fact number 2" in sent
        boss = await admin_session(live)
        tasks = (await boss.request("GET", "/api/admin/tasks")).json()
        assert tasks["memory"]["done"] >= 1 and tasks["memory"]["failed"] == 0


async def test_short_term_memories_merge_into_long_term(db_url: str, fake: Any) -> None:
    async with server(db_url, fake, memory_short_term_budget=1) as live:
        alice = await live.register()
        mira = await alice.character("Mira")
        for i in range(3):
            await chat(alice, mira["id"], f"hello {i}")
        await idle(live)
        mems = await memories(alice, mira["id"])
        assert mems and {m["kind"] for m in mems} == {"long_term"}
        merges = [r for r in fake.requests if "MEMORY MERGE for Mira" in r.messages[-1]["content"]]
        assert len(merges) == 1


async def test_messages_arriving_during_compression_stay_uncompressed(
    db_url: str, fake: Any
) -> None:
    async with server(db_url, fake) as live:
        memory = live.services.memory
        entered, release = trio.Event(), trio.Event()

        async def hold(conversation_id: int) -> None:
            entered.set()
            await release.wait()

        memory.hooks.before_apply = hold
        alice = await live.register()
        mira = await alice.character("Mira")
        for i in range(3):
            await chat(alice, mira["id"], f"before {i}")
        with trio.fail_after(20):
            await entered.wait()
        # the summary is written; meanwhile two more exchanges happen, unhindered
        for i in range(2):
            await chat(alice, mira["id"], f"during {i}")
        r = await alice.request("POST", f"/api/characters/{mira['id']}/chat/compress")
        assert r.status_code == 202 and r.json() == {"queued": False}  # one is running
        memory.hooks.before_apply = None
        release.set()
        with trio.fail_after(20):
            await memory.wait_for(lambda: memory.counters.done >= 1)
        items = await history(alice, mira["id"])
        assert len(items) == 10  # nothing lost
        first_job = [m["compressed"] for m in items]
        # the first job marked only what it summarised (the four oldest)
        assert first_job[:4] == [True] * 4
        # the six later ones are beyond the trigger again: a follow-up job compresses them
        await idle(live)
        items = await history(alice, mira["id"])
        assert [m["compressed"] for m in items] == [True] * 8 + [False] * 2
        summaries = summary_requests(fake)
        assert len(summaries) == 2
        assert "during" not in summaries[0].messages[-1]["content"]
        assert "User: during 0" in summaries[1].messages[-1]["content"]
        assert "before 0" not in summaries[1].messages[-1]["content"]


async def test_held_job_leaves_new_messages_unmarked(db_url: str, fake: Any) -> None:
    """The precise check: the transaction that stores a summary marks only what it summarised."""
    async with server(db_url, fake) as live:
        memory = live.services.memory
        entered, release = trio.Event(), trio.Event()

        async def hold(conversation_id: int) -> None:
            entered.set()
            await release.wait()

        memory.hooks.before_apply = hold
        alice = await live.register()
        mira = await alice.character("Mira")
        for i in range(3):
            await chat(alice, mira["id"], f"before {i}")
        with trio.fail_after(20):
            await entered.wait()
        memory.trigger = 1000  # no follow-up job
        for i in range(2):
            await chat(alice, mira["id"], f"during {i}")
        release.set()
        await idle(live)
        items = await history(alice, mira["id"])
        assert [m["compressed"] for m in items] == [True] * 4 + [False] * 6
        assert len(await memories(alice, mira["id"])) == 2


async def test_force_compress(db_url: str, fake: Any) -> None:
    async with server(db_url, fake, memory_trigger_messages=40) as live:
        alice = await live.register()
        bob = await live.register("bob")
        mira = await alice.character("Mira")
        path = f"/api/characters/{mira['id']}/chat/compress"
        r = await alice.request("POST", path)
        assert r.status_code == 202 and r.json() == {"queued": False}  # nothing to compress
        await chat(alice, mira["id"], "one")
        await chat(alice, mira["id"], "two")
        r = await bob.request("POST", path)
        assert r.status_code == 404
        before = (await alice.request("GET", "/api/me/usage")).json()["days"]
        assert sum(d["calls"] for d in before) == 2
        r = await alice.request("POST", path)
        assert r.status_code == 202 and r.json() == {"queued": True}
        await idle(live)
        items = await history(alice, mira["id"])
        assert [m["compressed"] for m in items] == [True, True, False, False]
        assert await memories(alice, mira["id"])
        # the compression call counts in alice's usage (and quota), nobody else's
        usage = (await alice.request("GET", "/api/me/usage")).json()
        assert sum(d["calls"] for d in usage["days"]) == 3
        assert (await bob.request("GET", "/api/me/usage")).json()["days"] == []


async def test_failing_job_retries_then_fails_keeping_the_error(db_url: str, fake: Any) -> None:
    async with server(db_url, fake) as live:
        memory = live.services.memory
        memory.max_attempts = 2
        memory.retry_base = 0.01
        # 400 is not retried by the client: each attempt of the job fails once
        fake.faults.extend([Fault.http(400, match="MEMORY SUMMARY")] * 3)
        alice = await live.register()
        mira = await alice.character("Mira")
        for i in range(3):
            await chat(alice, mira["id"], f"m{i}")
        with trio.fail_after(20):
            await memory.wait_for(lambda: memory.counters.failed == 1)
        assert memory.counters.retried == 1
        assert len(fake.faults) == 1
        failed = await live.services.db.read(_jobs_with_status, "failed")
        assert len(failed) == 1 and failed[0].attempts == 2
        assert "BadRequest" in (failed[0].last_error or "")
        assert await memories(alice, mira["id"]) == []
        assert not any(m["compressed"] for m in await history(alice, mira["id"]))
        boss = await admin_session(live)
        tasks = (await boss.request("GET", "/api/admin/tasks")).json()["memory"]
        assert tasks["failed"] == 1 and tasks["queued"] == 0 and tasks["running"] == 0
        # a later trigger queues a fresh job (the failed one does not block it); it succeeds
        fake.faults.clear()
        await chat(alice, mira["id"], "again")
        await idle(live)
        assert await memories(alice, mira["id"])


async def test_a_retried_job_succeeds(db_url: str, fake: Any) -> None:
    async with server(db_url, fake) as live:
        memory = live.services.memory
        memory.retry_base = 0.01
        fake.faults.append(Fault.http(400, match="MEMORY SUMMARY"))
        alice = await live.register()
        mira = await alice.character("Mira")
        for i in range(3):
            await chat(alice, mira["id"], f"m{i}")
        with trio.fail_after(20):
            await memory.wait_for(lambda: memory.counters.done == 1)
        assert memory.counters.retried == 1
        done = await live.services.db.read(_jobs_with_status, "done")
        assert len(done) == 1 and done[0].attempts == 2
        assert await memories(alice, mira["id"])


async def test_crashed_worker_is_restarted_and_counted(db_url: str, fake: Any) -> None:
    async with server(db_url, fake) as live:
        memory = live.services.memory
        memory.supervisor.policy = SupervisorPolicy(initial_backoff=0.01, max_backoff=0.05)
        crashes = 0

        def crash_once(index: int) -> None:
            nonlocal crashes
            if crashes == 0:
                crashes += 1
                raise RuntimeError("injected worker crash")

        memory.hooks.worker_loop = crash_once
        memory.wake()
        with trio.fail_after(20):
            await memory.supervisor.wait_for(lambda: memory.supervisor.restarts >= 1)
        boss = await admin_session(live)
        tasks = (await boss.request("GET", "/api/admin/tasks")).json()
        assert tasks["memory"]["restarts"] >= 1
        assert (await live.client.get("/readyz")).status_code == 200
        # the pool still works
        alice = await live.register()
        mira = await alice.character("Mira")
        for i in range(3):
            await chat(alice, mira["id"], f"m{i}")
        await idle(live)
        assert await memories(alice, mira["id"])


async def test_repeated_crashes_make_readyz_unavailable(db_url: str, fake: Any) -> None:
    async with server(db_url, fake) as live:
        memory = live.services.memory
        supervisor = memory.supervisor
        supervisor.policy = SupervisorPolicy(
            initial_backoff=0.01, max_backoff=0.05, degraded_after=3
        )

        def always_crash(index: int) -> None:
            raise RuntimeError("injected worker crash")

        memory.hooks.worker_loop = always_crash
        memory.wake()
        with trio.fail_after(20):
            await supervisor.wait_for(lambda: supervisor.degraded)
        r = await live.client.get("/readyz")
        assert r.status_code == 503
        check = r.json()["checks"]["memory_workers"]
        assert check["status"] == "degraded"
        assert "RuntimeError: injected worker crash" in check["reason"]
        assert (await live.client.get("/healthz")).status_code == 200  # the app keeps running
        # the crashes stop; once a worker has run stably the pool is ready again
        memory.hooks.worker_loop = None
        supervisor.policy.stable_after = 0
        with trio.fail_after(20):
            await supervisor.wait_for(lambda: not supervisor.degraded)
        assert (await live.client.get("/readyz")).status_code == 200


async def test_queued_job_survives_a_restart(db_url: str, fake: Any) -> None:
    async with server(db_url, fake) as live:
        memory = live.services.memory
        memory.supervisor.policy = SupervisorPolicy(initial_backoff=3600, jitter=0)

        def down(index: int) -> None:
            raise RuntimeError("workers are down")

        memory.hooks.worker_loop = down
        memory.wake()
        workers = memory.supervisor.workers
        with trio.fail_after(20):
            await memory.supervisor.wait_for(lambda: all(w.crashes for w in workers.values()))
        alice = await live.register()
        mira = await alice.character("Mira")
        for i in range(3):
            await chat(alice, mira["id"], f"m{i}")
        assert (await memory.stats())["queued"] == 1
    async with server(db_url, fake) as live:
        alice = Session(live, alice.token, alice.user)
        await idle(live)
        assert await memories(alice, mira["id"])
        assert (await live.services.memory.stats())["done"] == 1


async def test_job_interrupted_by_shutdown_resumes(db_url: str, fake: Any) -> None:
    async with server(db_url, fake) as live:
        memory = live.services.memory
        entered = trio.Event()

        async def hang(conversation_id: int) -> None:
            entered.set()
            await trio.sleep_forever()

        memory.hooks.before_apply = hang
        alice = await live.register()
        mira = await alice.character("Mira")
        for i in range(3):
            await chat(alice, mira["id"], f"m{i}")
        with trio.fail_after(20):
            await entered.wait()
    async with server(db_url, fake) as live:
        alice = Session(live, alice.token, alice.user)
        await idle(live)
        assert len(await memories(alice, mira["id"])) == 2
        (job,) = await live.services.db.read(_jobs_with_status, "done")
        assert job.attempts == 2


async def test_expired_lease_is_taken_over(db_url: str, fake: Any) -> None:
    async with server(db_url, fake, memory_trigger_messages=40) as live:
        alice = await live.register()
        mira = await alice.character("Mira")
        for i in range(2):
            await chat(alice, mira["id"], f"m{i}")
        conversation_id = await _conversation_id(live, alice, mira["id"])

        def dead_process_holds_it(conn: Connection) -> None:
            jobs.enqueue(conn, "compress", {"conversation_id": conversation_id})
            claimed = jobs.claim(conn, owner="dead", lease_seconds=0, now=datetime.now(UTC))
            assert claimed is not None

        await live.services.db.write(dead_process_holds_it)
        live.services.memory.wake()
        await idle(live)
        (job,) = await live.services.db.read(_jobs_with_status, "done")
        assert job.attempts == 2 and job.lease_owner == live.services.memory.owner
        assert [m["compressed"] for m in await history(alice, mira["id"])] == [
            True,
            True,
            False,
            False,
        ]


async def _conversation_id(live: Live, s: Session, character_id: str) -> int:
    conversation = await live.services.db.read(
        conversations.get_direct, int(s.user["id"]), int(character_id)
    )
    assert conversation is not None
    return conversation.id


def _jobs_with_status(conn: Connection, status: str) -> list[Any]:
    ids = conn.execute(select(table.c.id).where(table.c.status == status)).scalars().all()
    return [jobs.get_job(conn, i) for i in ids]


async def test_readyz_follows_the_database_back_not_the_workers_backoff(
    db_url: str, fake: Any
) -> None:
    """Workers that crashed on storage errors during an outage wait out a long backoff; a
    probe that finds the database answering restarts them, and readiness returns at once
    (before: degraded until a worker had run `stable_after` seconds, after its backoff)."""
    async with server(db_url, fake) as live:
        memory = live.services.memory
        supervisor = memory.supervisor
        supervisor.policy = SupervisorPolicy(
            initial_backoff=0.01, max_backoff=0.05, jitter=0, degraded_after=3
        )

        def database_down(index: int) -> None:
            raise StorageUnavailable("injected: the database is down")

        memory.hooks.worker_loop = database_down
        memory.wake()
        with trio.fail_after(20):
            await supervisor.wait_for(lambda: supervisor.degraded)
        # a long outage: every worker now waits out a long backoff
        supervisor.policy.initial_backoff = supervisor.policy.max_backoff = 3600
        workers = supervisor.workers.values()
        before = {w.name: w.crashes for w in workers}
        with trio.fail_after(20):
            await supervisor.wait_for(
                lambda: all(w.crashes > before[w.name] and w.backoff is not None for w in workers)
            )
        assert (await live.client.get("/readyz")).status_code == 503
        memory.hooks.worker_loop = None  # the database is back
        with trio.fail_after(5):
            for _ in range(50):  # a probe every 50 ms or so, bounded
                r = await live.client.get("/readyz")
                if r.status_code == 200:
                    break
                await trio.sleep(0.05)
        assert r.status_code == 200
        assert r.json()["checks"]["memory_workers"]["status"] == "ok"
        assert all(w.running and w.streak == 0 for w in workers)
