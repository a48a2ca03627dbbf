"""Generations in flight: at most one per conversation, enforced by the database.

A row exists only while its generation runs (unique ``conversation_id``).
``begin_generation`` inserts with ``ON CONFLICT DO NOTHING`` and, on a
conflict, deletes the row if it expired (its process died) and inserts again, in
the same transaction, so two processes racing for one conversation get exactly
one id. A generation whose row is gone (ended, or taken over after its lease
expired) reads as "stop".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, delete, func, select, update

from .direct import Direct
from .inserts import direct_insert_or_ignore
from .schema import generations
from .timestamps import utcnow

_DELETE_EXPIRED = Direct(
    delete(generations)
    .where(
        generations.c.conversation_id == bindparam("conversation_id"),
        generations.c.lease_expires_at <= bindparam("created_at"),  # the new row's: now
    )
    .returning(generations.c.id)
)
_END = Direct(delete(generations).where(generations.c.id == bindparam("generation_id")))
_BEGIN = direct_insert_or_ignore(
    generations,
    ["conversation_id", "owner", "lease_expires_at", "stop_requested", "created_at"],
    index_elements=["conversation_id"],
    returning=["id"],
)


def begin_generation(
    conn: Connection, conversation_id: int, *, owner: str, lease_seconds: float, now: datetime
) -> int | None:
    """Start a generation: its id, or None if another unexpired one is in flight.

    An expired one (its owner crashed and stopped renewing) is taken over.
    """
    row = {
        "conversation_id": conversation_id,
        "owner": owner,
        "lease_expires_at": now + timedelta(seconds=lease_seconds),
        "stop_requested": False,
        "created_at": now,
    }
    generation_id: int | None = _BEGIN.scalar(conn, row)
    # a conflict: the conversation's generation runs, or its process died (the row expired)
    if generation_id is None and _DELETE_EXPIRED.rows(conn, row):
        generation_id = _BEGIN.scalar(conn, row)
    return generation_id


def renew_generation(
    conn: Connection, generation_id: int, *, lease_seconds: float, now: datetime
) -> bool:
    """Heartbeat: extend the lease; returns True if the generation should stop.

    True when a stop was requested, and also when the generation no longer
    exists (ended, or taken over by another process after its lease expired).
    """
    row = conn.execute(
        update(generations)
        .where(generations.c.id == generation_id)
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
        .returning(generations.c.stop_requested)
    ).first()
    return True if row is None else bool(row.stop_requested)


def renew_owned(
    conn: Connection,
    *,
    owner: str,
    lease_seconds: float,
    now: datetime,
    generation_ids: Sequence[int] | None = None,
) -> list[int]:
    """Heartbeat for every generation ``owner`` runs; returns the ids that should stop.

    Extends the lease of ``owner``'s generations (only those in ``generation_ids`` when
    given) in one statement and
    returns, ascending, those with a stop request; with ``generation_ids`` (the
    ids the caller is running) also those among them that no longer exist
    (ended, or taken over after their lease expired).
    """
    condition = generations.c.owner == owner
    if generation_ids is not None:
        # only what the caller still runs: a row left behind by a failed save expires
        condition = condition & generations.c.id.in_(list(generation_ids))
    renewed = conn.execute(
        update(generations)
        .where(condition)
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
        .returning(generations.c.id, generations.c.stop_requested)
    ).all()
    stop = {row.id for row in renewed if row.stop_requested}
    if generation_ids is not None:
        alive = {row.id for row in renewed}
        stop.update(i for i in generation_ids if i not in alive)
    return sorted(stop)


def request_stop(conn: Connection, conversation_id: int, *, now: datetime | None = None) -> bool:
    """Flag the conversation's running generation to stop; False if none is running.

    A generation whose lease expired before ``now`` (default: the current
    time) is not running.
    """
    result = conn.execute(
        update(generations)
        .where(
            generations.c.conversation_id == conversation_id,
            generations.c.lease_expires_at > (now or utcnow()),
        )
        .values(stop_requested=True)
    )
    return result.rowcount > 0


def stop_requested(conn: Connection, generation_id: int) -> bool:
    """Whether the generation was asked to stop (True if it no longer exists)."""
    flag = conn.execute(
        select(generations.c.stop_requested).where(generations.c.id == generation_id)
    ).scalar_one_or_none()
    return True if flag is None else bool(flag)


def end_generation(conn: Connection, generation_id: int) -> None:
    """Mark the generation finished (frees the conversation); no error if already gone."""
    _END.rows(conn, {"generation_id": generation_id})


def active_generation(conn: Connection, conversation_id: int, *, now: datetime) -> int | None:
    """The id of the conversation's unexpired generation, or None."""
    return conn.execute(
        select(generations.c.id).where(
            generations.c.conversation_id == conversation_id,
            generations.c.lease_expires_at > now,
        )
    ).scalar_one_or_none()


def count_active(conn: Connection, *, now: datetime) -> int:
    """How many generations are in flight (unexpired) across all conversations."""
    return conn.execute(
        select(func.count()).select_from(generations).where(generations.c.lease_expires_at > now)
    ).scalar_one()


def expired_generations(
    conn: Connection, *, now: datetime, limit: int = 100
) -> list[tuple[int, str]]:
    """``(id, owner)`` of generations whose lease ran out (their process died or lost the
    database), oldest first."""
    rows = conn.execute(
        select(generations.c.id, generations.c.owner)
        .where(generations.c.lease_expires_at <= now)
        .order_by(generations.c.lease_expires_at)
        .limit(limit)
    ).all()
    return [(row.id, row.owner) for row in rows]


def take_over_expired(conn: Connection, generation_id: int, *, now: datetime) -> int | None:
    """Inside a write transaction: end an expired generation on behalf of its dead process;
    its conversation id, or None when it is not expired (renewed) or already gone (another
    process took it over, or it ended). Exactly one of several racing processes gets the id."""
    return conn.execute(
        delete(generations)
        .where(generations.c.id == generation_id, generations.c.lease_expires_at <= now)
        .returning(generations.c.conversation_id)
    ).scalar_one_or_none()


def generation_alive(conn: Connection, generation_id: int, *, now: datetime) -> bool:
    """Whether the generation's row exists with an unexpired lease."""
    return (
        conn.execute(
            select(generations.c.id).where(
                generations.c.id == generation_id, generations.c.lease_expires_at > now
            )
        ).first()
        is not None
    )
