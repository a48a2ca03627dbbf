"""generations: one in flight per conversation, enforced by the database."""

from __future__ import annotations

from datetime import datetime, timedelta

import trio

from storage import Database, generations, open_database

from .helpers import T0, make_direct


async def test_lifecycle_and_stop(db: Database) -> None:
    _, _, conv = await make_direct(db)
    gen = await db.write(
        generations.begin_generation, conv.id, owner="p1", lease_seconds=30, now=T0
    )
    assert gen is not None
    assert (
        await db.write(generations.begin_generation, conv.id, owner="p2", lease_seconds=30, now=T0)
        is None
    )
    assert await db.read(generations.active_generation, conv.id, now=T0) == gen
    assert await db.read(generations.count_active, now=T0) == 1
    assert await db.read(generations.stop_requested, gen) is False
    assert await db.write(generations.renew_generation, gen, lease_seconds=30, now=T0) is False

    assert await db.write(generations.request_stop, conv.id, now=T0) is True
    assert await db.read(generations.stop_requested, gen) is True
    assert await db.write(generations.renew_generation, gen, lease_seconds=30, now=T0) is True

    await db.write(generations.end_generation, gen)
    await db.write(generations.end_generation, gen)  # idempotent
    assert await db.read(generations.active_generation, conv.id, now=T0) is None
    assert await db.write(generations.request_stop, conv.id, now=T0) is False
    assert await db.read(generations.count_active, now=T0) == 0
    again = await db.write(
        generations.begin_generation, conv.id, owner="p1", lease_seconds=30, now=T0
    )
    assert again is not None and again > gen
    assert await db.read(generations.stop_requested, again) is False


async def test_expired_lease_is_taken_over(db: Database) -> None:
    _, _, conv = await make_direct(db)
    dead = await db.write(
        generations.begin_generation, conv.id, owner="dead", lease_seconds=10, now=T0
    )
    assert dead is not None
    later = T0 + timedelta(seconds=9)
    assert (
        await db.write(
            generations.begin_generation, conv.id, owner="new", lease_seconds=10, now=later
        )
        is None
    )
    # Renewing keeps it alive past its first lease.
    await db.write(generations.renew_generation, dead, lease_seconds=10, now=later)
    assert (
        await db.read(generations.active_generation, conv.id, now=T0 + timedelta(seconds=15))
        == dead
    )

    expired = T0 + timedelta(seconds=19)
    assert await db.read(generations.active_generation, conv.id, now=expired) is None
    assert await db.read(generations.count_active, now=expired) == 0
    assert await db.write(generations.request_stop, conv.id, now=expired) is False
    taken = await db.write(
        generations.begin_generation, conv.id, owner="new", lease_seconds=10, now=expired
    )
    assert taken is not None and taken != dead
    # The old owner learns it lost the generation: it reads as "stop".
    assert await db.write(generations.renew_generation, dead, lease_seconds=10, now=expired) is True
    assert await db.read(generations.stop_requested, dead) is True
    assert await db.read(generations.active_generation, conv.id, now=expired) == taken


async def test_renew_owned_renews_all_and_reports_stops(db: Database) -> None:
    user, _, c1 = await make_direct(db, "u1")
    _, _, c2 = await make_direct(db, "u2")
    _, _, c3 = await make_direct(db, "u3")
    g1 = await db.write(generations.begin_generation, c1.id, owner="me", lease_seconds=10, now=T0)
    g2 = await db.write(generations.begin_generation, c2.id, owner="me", lease_seconds=10, now=T0)
    g3 = await db.write(generations.begin_generation, c3.id, owner="you", lease_seconds=10, now=T0)
    assert None not in (g1, g2, g3)
    assert g1 is not None and g2 is not None
    await db.write(generations.request_stop, c2.id, now=T0)
    t = T0 + timedelta(seconds=8)
    assert await db.write(generations.renew_owned, owner="me", lease_seconds=10, now=t) == [g2]
    t2 = T0 + timedelta(seconds=12)
    assert await db.read(generations.count_active, now=t2) == 2  # mine renewed, yours expired
    await db.write(generations.end_generation, g1)
    lost = await db.write(
        generations.renew_owned, owner="me", lease_seconds=10, now=t2, generation_ids=[g1, g2]
    )
    assert lost == sorted([g1, g2])


async def test_renew_owned_leaves_untracked_rows_to_expire(db: Database) -> None:
    """A row the owner no longer runs (its save failed) is not kept alive by the heartbeat."""
    _, _, c1 = await make_direct(db, "u1")
    _, _, c2 = await make_direct(db, "u2")
    g1 = await db.write(generations.begin_generation, c1.id, owner="me", lease_seconds=10, now=T0)
    g2 = await db.write(generations.begin_generation, c2.id, owner="me", lease_seconds=10, now=T0)
    assert g1 is not None and g2 is not None
    t = T0 + timedelta(seconds=8)
    stop = await db.write(
        generations.renew_owned, owner="me", lease_seconds=10, now=t, generation_ids=[g1]
    )
    assert stop == []
    later = T0 + timedelta(seconds=12)
    assert await db.read(generations.active_generation, c1.id, now=later) == g1
    assert await db.read(generations.active_generation, c2.id, now=later) is None


async def test_begin_is_exclusive_under_concurrency(db: Database) -> None:
    """Many tasks on two engines (two processes' worth of pools) race; exactly one wins."""
    _, _, conv = await make_direct(db)

    async def contender(target: Database, n: int, now: datetime, won: list[int]) -> None:
        got = await target.write(
            generations.begin_generation, conv.id, owner=f"task{n}", lease_seconds=60, now=now
        )
        if got is not None:
            won.append(got)

    async with open_database(db.url, migrate=False) as other:
        # Round 2 races for the takeover of round 1's generation, expired by then.
        for now in (T0, T0 + timedelta(minutes=5)):
            won: list[int] = []
            async with trio.open_nursery() as nursery:
                for n in range(30):
                    nursery.start_soon(contender, db if n % 2 else other, n, now, won)
            assert len(won) == 1, won
            assert await db.read(generations.active_generation, conv.id, now=now) == won[0]
