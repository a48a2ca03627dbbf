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
