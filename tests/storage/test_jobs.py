"""jobs: the durable queue (dedupe, leases, retries) and claims across processes."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import trio
from sqlalchemy import Connection

from storage import Database, jobs, open_database
from storage.records import Job
from storage.timestamps import utcnow
from tests.dbutil import DB_KINDS

from .helpers import T0

ROOT = Path(__file__).resolve().parents[2]


async def test_enqueue_dedupes_only_unfinished_jobs(db: Database) -> None:
    assert await db.write(jobs.enqueue, "compress", {"c": 1}, dedupe_key="c1", run_at=T0)
    assert not await db.write(jobs.enqueue, "compress", {"c": 1}, dedupe_key="c1", run_at=T0)
    assert await db.write(jobs.enqueue, "compress", {"c": 2}, dedupe_key="c2", run_at=T0)
    assert await db.write(jobs.enqueue, "other", {}, run_at=T0)
    assert await db.write(jobs.enqueue, "other", {}, run_at=T0)  # no key: never deduped
    assert await db.read(jobs.counts) == {"queued": 4, "running": 0, "done": 0, "failed": 0}

    job = await db.write(jobs.claim, owner="w", lease_seconds=30, now=T0)
    assert job is not None and job.dedupe_key == "c1" and job.payload == {"c": 1}
    # Still unfinished while running.
    assert not await db.write(jobs.enqueue, "compress", {}, dedupe_key="c1", run_at=T0)
    await db.write(jobs.complete, job.id, owner="w")
    assert await db.write(jobs.enqueue, "compress", {"again": True}, dedupe_key="c1", run_at=T0)

    job = await db.write(jobs.claim, owner="w", lease_seconds=30, now=T0)
    assert job is not None and job.dedupe_key == "c2"
    await db.write(jobs.fail, job.id, owner="w", error="boom", retry_at=None)
    assert await db.write(jobs.enqueue, "compress", {}, dedupe_key="c2", run_at=T0)


async def test_claim_order_due_time_and_kinds(db: Database) -> None:
    await db.write(jobs.enqueue, "b", {"n": 1}, run_at=T0 + timedelta(seconds=5))
    await db.write(jobs.enqueue, "a", {"n": 2}, run_at=T0)
    await db.write(jobs.enqueue, "a", {"n": 3}, run_at=T0 + timedelta(hours=1))

    assert await db.write(jobs.claim, owner="w", lease_seconds=30, now=T0, kinds=["b"]) is None
    first = await db.write(jobs.claim, owner="w", lease_seconds=30, now=T0 + timedelta(seconds=5))
    second = await db.write(jobs.claim, owner="w", lease_seconds=30, now=T0 + timedelta(seconds=5))
    assert first is not None and second is not None
    assert (first.payload, second.payload) == ({"n": 2}, {"n": 1})  # oldest due first
    await db.write(jobs.complete, first.id, owner="w")
    await db.write(jobs.complete, second.id, owner="w")
    assert (
        await db.write(jobs.claim, owner="w", lease_seconds=30, now=T0 + timedelta(seconds=5))
        is None
    )
    later = await db.write(
        jobs.claim, owner="w", lease_seconds=30, now=T0 + timedelta(hours=1), kinds=["a"]
    )
    assert later is not None and later.payload == {"n": 3}
    assert (later.status, later.attempts, later.lease_owner) == ("running", 1, "w")
    assert later.lease_expires_at == T0 + timedelta(hours=1, seconds=30)


async def test_default_run_at_is_now(db: Database) -> None:
    before = utcnow()
    await db.write(jobs.enqueue, "k", {"x": [1, "two"]})
    job = await db.write(jobs.claim, owner="w", lease_seconds=5, now=utcnow())
    assert job is not None and before <= job.run_at <= utcnow()
    assert job.payload == {"x": [1, "two"]}
    assert await db.read(jobs.get_job, job.id) == job
    assert await db.read(jobs.get_job, job.id + 1) is None


async def test_expired_lease_is_reclaimed_and_old_owner_is_fenced(db: Database) -> None:
    await db.write(jobs.enqueue, "k", {}, run_at=T0)
    first = await db.write(jobs.claim, owner="crashed", lease_seconds=30, now=T0)
    assert first is not None
    assert (
        await db.write(jobs.claim, owner="b", lease_seconds=30, now=T0 + timedelta(seconds=29))
        is None
    )
    assert await db.write(
        jobs.extend_lease,
        first.id,
        owner="crashed",
        lease_seconds=30,
        now=T0 + timedelta(seconds=20),
    )
    assert (
        await db.write(jobs.claim, owner="b", lease_seconds=30, now=T0 + timedelta(seconds=49))
        is None
    )

    reclaimed = await db.write(
        jobs.claim, owner="b", lease_seconds=30, now=T0 + timedelta(seconds=50)
    )
    assert reclaimed is not None and reclaimed.id == first.id
    assert (reclaimed.attempts, reclaimed.lease_owner) == (2, "b")

    # The old owner wakes up: it can neither extend, complete nor fail the job.
    assert not await db.write(
        jobs.extend_lease, first.id, owner="crashed", lease_seconds=30, now=T0
    )
    await db.write(jobs.complete, first.id, owner="crashed")
    await db.write(jobs.fail, first.id, owner="crashed", error="late", retry_at=None)
    current = await db.read(jobs.get_job, first.id)
    assert current is not None
    assert (current.status, current.lease_owner, current.last_error) == ("running", "b", None)

    await db.write(jobs.complete, first.id, owner="b")
    done = await db.read(jobs.get_job, first.id)
    assert done is not None and done.status == "done" and done.lease_expires_at is None
    assert await db.read(jobs.counts) == {"queued": 0, "running": 0, "done": 1, "failed": 0}


async def test_fail_with_retry_then_for_good(db: Database) -> None:
    await db.write(jobs.enqueue, "k", {}, dedupe_key="d", run_at=T0)
    job = await db.write(jobs.claim, owner="w", lease_seconds=30, now=T0)
    assert job is not None
    retry_at = T0 + timedelta(seconds=40)
    await db.write(jobs.fail, job.id, owner="w", error="rate limited", retry_at=retry_at)
    queued = await db.read(jobs.get_job, job.id)
    assert queued is not None
    assert (queued.status, queued.run_at, queued.last_error) == ("queued", retry_at, "rate limited")
    # Backing off keeps the dedupe key taken.
    assert not await db.write(jobs.enqueue, "k", {}, dedupe_key="d", run_at=T0)
    assert (
        await db.write(jobs.claim, owner="w", lease_seconds=30, now=retry_at - timedelta(seconds=1))
        is None
    )
    again = await db.write(jobs.claim, owner="w", lease_seconds=30, now=retry_at)
    assert again is not None and again.attempts == 2
    await db.write(jobs.fail, job.id, owner="w", error="gave up", retry_at=None)
    failed = await db.read(jobs.get_job, job.id)
    assert failed is not None and (failed.status, failed.last_error) == ("failed", "gave up")
    assert await db.write(jobs.claim, owner="w", lease_seconds=30, now=retry_at) is None
    assert (await db.read(jobs.counts))["failed"] == 1


async def test_concurrent_claims_on_two_engines_are_distinct(db: Database) -> None:
    claimers = 40
    for n in range(claimers):
        await db.write(jobs.enqueue, "k", {"n": n}, run_at=T0)
    claimed: list[Job | None] = []

    async def claim(target: Database, n: int) -> None:
        claimed.append(await target.write(jobs.claim, owner=f"c{n}", lease_seconds=30, now=T0))

    async with open_database(db.url, migrate=False) as other, trio.open_nursery() as nursery:
        for n in range(claimers):
            nursery.start_soon(claim, db if n % 2 else other, n)
    # As many jobs as claimers: every claim gets one, and no job is handed out twice.
    ids = [job.id for job in claimed if job is not None]
    assert len(ids) == len(set(ids)) == claimers
    assert await db.write(jobs.claim, owner="late", lease_seconds=30, now=T0) is None


async def _read_line(process: trio.Process) -> bytes:
    assert process.stdout is not None
    line = b""
    while not line.endswith(b"\n"):
        chunk = await process.stdout.receive_some(1)
        assert chunk, f"worker exited early: {line!r}"
        line += chunk
    return line


async def _read_all(process: trio.Process) -> bytes:
    assert process.stdout is not None
    data = b""
    while chunk := await process.stdout.receive_some(65536):
        data += chunk
    return data


# One backend is enough here (processes are slow to start): PostgreSQL when configured.
@pytest.mark.parametrize("db_kind", [DB_KINDS[-1]])
async def test_worker_processes_never_claim_the_same_job(db: Database) -> None:
    total, workers = 200, 2

    def fill(conn: Connection) -> None:
        for n in range(total):
            jobs.enqueue(conn, "k", {"n": n}, run_at=T0)

    await db.write(fill)

    processes: list[trio.Process] = []
    try:
        for w in range(workers):
            processes.append(
                await trio.lowlevel.open_process(
                    [sys.executable, "-m", "tests.storage.claim_worker", db.url, f"worker{w}"],
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                )
            )
        for process in processes:
            assert await _read_line(process) == b"ready\n"
        for process in processes:  # start them together
            assert process.stdin is not None
            await process.stdin.send_all(b"go\n")
        outputs = [await _read_all(process) for process in processes]
        codes = [await process.wait() for process in processes]
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                with trio.CancelScope(shield=True):
                    await process.wait()

    assert codes == [0] * workers
    claimed = [json.loads(output) for output in outputs]
    every = [job_id for ids in claimed for job_id in ids]
    assert len(every) == len(set(every)) == total  # each job exactly once
    assert await db.read(jobs.counts) == {"queued": 0, "running": 0, "done": total, "failed": 0}
