"""Replies kept while the database is unavailable are saved once it answers, exactly once, even
across a restart of the process that kept them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from app.services.lifecycle import pending_message
from app.services.spool import ReplySpool, SpoolEntry, store_entry
from storage import Database, StorageUnavailable, generations, messages, open_database
from storage.timestamps import utcnow
from tests.dbutil import DB_KINDS, temp_database_url
from tests.storage.helpers import make_direct


class Outage:
    """A `Database` whose writes fail with `StorageUnavailable` while `down` is set."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.down = True
        self.failed = 0
        self.attempted = trio.Event()

    async def write(self, fn: Callable[..., Any], *args: Any) -> Any:
        self.attempted.set()
        if self.down:
            self.failed += 1
            raise StorageUnavailable("database unavailable: test outage")
        return await self._db.write(fn, *args)


@pytest.fixture(params=DB_KINDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with (
        temp_database_url(request.param, tmp_path) as url,
        open_database(url) as database,
    ):
        yield database


async def _entry(db: Database) -> tuple[int, SpoolEntry]:
    _, character, conversation = await make_direct(db)
    gid = await db.write(
        generations.begin_generation,
        conversation.id,
        owner="gone",
        lease_seconds=30,
        now=utcnow(),
    )
    assert gid is not None
    reply = pending_message(
        conversation.id, "assistant", "kept 文字", character_id=character.id, status="complete"
    )
    return conversation.id, SpoolEntry([reply], gid)


async def _replies(db: Database, conversation_id: int) -> list[tuple[str, str]]:
    page = await db.read(messages.list_messages, conversation_id, limit=50, before=None)
    return [(m.content, m.status) for m in page.items]


async def test_kept_reply_is_saved_when_the_database_returns(db: Database, tmp_path: Path) -> None:
    conversation_id, entry = await _entry(db)
    outage = Outage(db)
    spool = ReplySpool(outage, tmp_path / "spool", owner="p1")  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(spool.run)
        await spool.keep(entry)
        assert (tmp_path / "spool" / "p1.jsonl").read_text().count('"entry"') == 1
        with trio.fail_after(10):
            while outage.failed < 2:  # retried with backoff while down
                outage.attempted = trio.Event()
                await outage.attempted.wait()
        assert await _replies(db, conversation_id) == []
        outage.down = False
        with trio.fail_after(30):
            await spool.wait_empty()
        nursery.cancel_scope.cancel()
    assert await _replies(db, conversation_id) == [("kept 文字", "complete")]
    # the generation row ended with the save: the conversation is free again
    assert await db.read(generations.active_generation, conversation_id, now=utcnow()) is None
    assert (tmp_path / "spool" / "p1.jsonl").read_text() == ""


async def test_a_restarted_process_saves_what_a_stopped_one_kept(
    db: Database, tmp_path: Path
) -> None:
    conversation_id, entry = await _entry(db)
    directory = tmp_path / "spool"
    first = ReplySpool(Outage(db), directory, owner="first")  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(first.run)
        await first.keep(entry)
        nursery.cancel_scope.cancel()  # the process stops with the database still down
    assert await _replies(db, conversation_id) == []
    # the save may even have committed before the connection broke: never stored twice
    await db.write(store_entry, SpoolEntry(entry.messages, None))

    second = ReplySpool(db, directory, owner="second")
    async with trio.open_nursery() as nursery:
        await nursery.start(second.run)
        with trio.fail_after(30):
            await second.wait_empty()
        nursery.cancel_scope.cancel()
    assert await _replies(db, conversation_id) == [("kept 文字", "complete")]
    assert not (directory / "first.jsonl").exists()


async def test_a_living_process_keeps_its_own_spool(db: Database, tmp_path: Path) -> None:
    _, entry = await _entry(db)
    directory = tmp_path / "spool"
    first = ReplySpool(Outage(db), directory, owner="first")  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(first.run)
        await first.keep(entry)
        other = ReplySpool(db, directory, owner="other")
        await nursery.start(other.run)
        assert other.pending == 0  # first is alive: its file is locked, not adopted
        nursery.cancel_scope.cancel()
