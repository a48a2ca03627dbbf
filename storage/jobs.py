"""A durable job queue, safe with several processes on one database.

``claim`` picks the oldest due job with ``SELECT … FOR UPDATE SKIP LOCKED`` on
PostgreSQL (on SQLite writes are serialised by ``BEGIN IMMEDIATE``) and leases
it to ``owner``; a running job whose lease expired (its worker died) is
claimable again. ``dedupe_key`` is unique among unfinished jobs. Retrying with
backoff is the caller's: ``fail(retry_at=...)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, cast, get_args

from sqlalchemy import Connection, and_, func, or_, select, update

from . import rows
from .inserts import insert_or_ignore
from .records import Job, JobStatus
from .schema import UNFINISHED_JOB, jobs
from .timestamps import utcnow


def enqueue(
    conn: Connection,
    kind: str,
    payload: Mapping[str, Any],
    *,
    dedupe_key: str | None = None,
    run_at: datetime | None = None,
) -> bool:
    """Queue a job due at ``run_at`` (default now); False if an unfinished job has the key."""
    now = utcnow()
    values = {
        "kind": kind,
        "payload": dict(payload),
        "dedupe_key": dedupe_key,
        "status": "queued",
        "run_at": run_at or now,
        "created_at": now,
        "updated_at": now,
    }
    if dedupe_key is None:
        conn.execute(jobs.insert().values(values))
        return True
    row = insert_or_ignore(
        conn, jobs, values, index_elements=["dedupe_key"], index_where=UNFINISHED_JOB
    )
    return row is not None


def claim(
    conn: Connection,
    *,
    owner: str,
    lease_seconds: float,
    now: datetime,
    kinds: Sequence[str] | None = None,
) -> Job | None:
    """Lease the oldest due job to ``owner``; None if nothing is due.

    Due: queued with ``run_at <= now``, or running with an expired lease. The
    job becomes running with ``attempts`` increased by one.
    """
    due = or_(
        and_(jobs.c.status == "queued", jobs.c.run_at <= now),
        and_(jobs.c.status == "running", jobs.c.lease_expires_at <= now),
    )
    query = select(jobs.c.id).where(due)
    if kinds is not None:
        query = query.where(jobs.c.kind.in_(list(kinds)))
    job_id = conn.execute(
        query.order_by(jobs.c.run_at, jobs.c.id).limit(1).with_for_update(skip_locked=True)
    ).scalar_one_or_none()
    if job_id is None:
        return None
    row = conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(
            status="running",
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            attempts=jobs.c.attempts + 1,
            updated_at=now,
        )
        .returning(*jobs.c)
    ).one()
    return rows.job(row)


def extend_lease(
    conn: Connection, job_id: int, *, owner: str, lease_seconds: float, now: datetime
) -> bool:
    """Extend ``owner``'s lease; False if the job is no longer running under that owner."""
    result = conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.status == "running", jobs.c.lease_owner == owner)
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds), updated_at=now)
    )
    return result.rowcount > 0


def complete(conn: Connection, job_id: int, *, owner: str) -> None:
    """Mark the job done; a no-op unless it is still running under ``owner``."""
    conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.status == "running", jobs.c.lease_owner == owner)
        .values(status="done", lease_expires_at=None, updated_at=utcnow())
    )


def fail(
    conn: Connection, job_id: int, *, owner: str, error: str, retry_at: datetime | None
) -> None:
    """Record a failed attempt: back to queued at ``retry_at``, or ``failed`` if None.

    A no-op unless the job is still running under ``owner``.
    """
    values: dict[str, Any] = {"last_error": error, "lease_expires_at": None, "updated_at": utcnow()}
    if retry_at is None:
        values["status"] = "failed"
    else:
        values.update(status="queued", run_at=retry_at)
    conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.status == "running", jobs.c.lease_owner == owner)
        .values(**values)
    )


def counts(conn: Connection) -> dict[JobStatus, int]:
    """How many jobs are in each status (every status present, zeros included)."""
    result: dict[JobStatus, int] = dict.fromkeys(get_args(JobStatus), 0)
    for status, n in conn.execute(select(jobs.c.status, func.count()).group_by(jobs.c.status)):
        result[cast(JobStatus, status)] = n
    return result


def get_job(conn: Connection, job_id: int) -> Job | None:
    """The job with that id, or None."""
    row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
    return rows.job(row) if row else None
