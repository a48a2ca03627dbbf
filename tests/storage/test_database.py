"""Database: error translation, pool exhaustion, statistics, timestamps, in-memory SQLite."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import datetime, timedelta, timezone

import pytest
import trio
from sqlalchemy import Connection, select

import storage.engine
from storage import (
    ConstraintViolation,
    Database,
    StorageUnavailable,
    messages,
    open_database,
    tokens,
    users,
)
from storage.schema import api_tokens
from storage.schema import users as users_table

from .helpers import T0, make_direct, make_user


async def test_ping_and_statistics(db: Database) -> None:
    await db.ping()
    figures = db.statistics()
    assert figures["pool_size"] == 10
    assert figures["threads_borrowed"] == 0 and figures["threads_waiting"] == 0
    assert db.dialect in ("sqlite", "postgresql")


async def test_failed_write_rolls_back_and_is_translated(db: Database) -> None:
    user = await make_user(db)

    def insert_then_break(conn: Connection) -> None:
        conn.execute(users_table.update().values(is_admin=True))
        messages.add_message(conn, 424242, "user", "no such conversation")

    with pytest.raises(ConstraintViolation):
        await db.write(insert_then_break)
    reread = await db.read(users.get_user, user.id)
    assert reread is not None and not reread.is_admin  # the whole transaction rolled back


async def test_timestamps_are_aware_utc_and_naive_ones_rejected(db: Database) -> None:
    user = await make_user(db)
    plus_two = timezone(timedelta(hours=2))
    await db.write(tokens.create_token, user.id, "t", T0.astimezone(plus_two))
    assert await db.read(tokens.user_for_token, "t", T0 - timedelta(microseconds=1)) == user
    assert await db.read(tokens.user_for_token, "t", T0) is None

    def expiry(conn: Connection) -> datetime:
        return conn.execute(select(api_tokens.c.expires_at)).scalar_one()

    stored = await db.read(expiry)
    assert stored == T0 and stored.utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="naive datetime"):
        await db.write(tokens.create_token, user.id, "n", datetime(2030, 1, 1))


async def test_pool_exhaustion_is_storage_unavailable(
    storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage.engine, "POOL_TIMEOUT_S", 0.05)
    async with open_database(storage_url, pool_size=1) as db:
        with ExitStack() as held:
            # Someone else holds every pooled connection.
            for _ in range(db.engine.pool.size()):
                held.enter_context(db.engine.connect())
            with pytest.raises(StorageUnavailable):
                await db.read(users.get_user, 1)
        await db.ping()  # usable again once they are returned


async def test_in_memory_sqlite_serialises_on_one_connection() -> None:
    async with open_database("sqlite://") as db:
        _, _, conv = await make_direct(db)

        async def chat(n: int) -> None:
            await db.write(messages.add_message, conv.id, "user", f"m{n}")
            await db.read(messages.list_messages, conv.id, limit=5, before=None)

        async with trio.open_nursery() as nursery:
            for n in range(20):
                nursery.start_soon(chat, n)
        assert await db.read(messages.count_uncompressed, conv.id) == 20


class _Refused(Exception):
    """An application error with keyword-only attributes (like the app's Conflict)."""

    def __init__(self, message: str, *, code: str = "refused", retry_after: int | None = None):
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


async def test_an_error_raised_in_a_write_reaches_the_caller_unchanged(db: Database) -> None:
    _, _, conv = await make_direct(db)
    raised: dict[int, _Refused] = {}

    def refuse(n: int):  # type: ignore[no-untyped-def]
        def fn(conn: Connection) -> None:
            messages.add_message(conn, conv.id, "user", f"rolled back {n}")
            raised[n] = _Refused(f"busy {n}", code="generation_in_progress", retry_after=n)
            raise raised[n]

        return fn

    caught: dict[int, BaseException] = {}

    async def run(n: int) -> None:
        try:
            if n % 2:
                await db.write(refuse(n))
            else:
                await db.write(messages.add_message, conv.id, "user", f"kept {n}")
        except _Refused as exc:
            caught[n] = exc

    await run(1)  # alone (on SQLite: a batch of one, its own transaction)
    async with trio.open_nursery() as nursery:  # together (on SQLite: shared batches)
        for n in range(2, 22):
            nursery.start_soon(run, n)
    assert sorted(caught) == list(range(1, 22, 2))
    for n, exc in caught.items():
        assert exc is raised[n]
        assert isinstance(exc, _Refused) and exc.code == "generation_in_progress"
        assert exc.retry_after == n and str(exc) == f"busy {n}"
    page = await db.read(messages.list_messages, conv.id, limit=100, before=None)
    assert sorted(m.content for m in page.items) == sorted(f"kept {n}" for n in range(2, 22, 2))
