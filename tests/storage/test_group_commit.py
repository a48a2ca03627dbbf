"""SQLite group commit: concurrent writes share transactions, each keeps its own outcome."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing
from sqlalchemy import Connection

from storage import ConstraintViolation, Database, messages, open_database
from storage.group_commit import GroupCommit

from .helpers import make_direct


@pytest.fixture
async def sqlite_db(tmp_path: Path):  # type: ignore[no-untyped-def]
    async with open_database(f"sqlite:///{tmp_path / 'gc.db'}") as db:
        yield db


def _group(db: Database) -> GroupCommit:
    group = db._group_commit  # noqa: SLF001 - the object under test
    assert group is not None
    return group


async def test_concurrent_writes_share_transactions(sqlite_db: Database) -> None:
    _, _, conv = await make_direct(sqlite_db)
    group = _group(sqlite_db)
    batches_before, writes_before = group.batches, group.writes
    ids: list[int] = []

    async def add(n: int) -> None:
        message = await sqlite_db.write(messages.add_message, conv.id, "user", f"m{n}")
        ids.append(message.id)

    async with trio.open_nursery() as nursery:
        for n in range(200):
            nursery.start_soon(add, n)
    assert len(set(ids)) == 200
    assert await sqlite_db.read(messages.count_uncompressed, conv.id) == 200
    assert group.writes - writes_before == 200
    assert 1 <= group.batches - batches_before < 200  # fewer transactions than writes
    assert group.waiting == 0 and not group.busy


async def test_a_failing_write_does_not_take_its_batch_down(sqlite_db: Database) -> None:
    _, _, conv = await make_direct(sqlite_db)
    outcomes: dict[int, str] = {}

    def good(n: int):  # type: ignore[no-untyped-def]
        def fn(conn: Connection) -> None:
            messages.add_message(conn, conv.id, "user", f"ok{n}")

        return fn

    def bad(conn: Connection) -> None:
        messages.add_message(conn, conv.id, "user", "rolled back with its savepoint")
        messages.add_message(conn, 424242, "user", "no such conversation")

    async def run(n: int) -> None:
        try:
            await sqlite_db.write(bad if n % 5 == 0 else good(n))
            outcomes[n] = "ok"
        except ConstraintViolation:
            outcomes[n] = "failed"

    async with trio.open_nursery() as nursery:
        for n in range(50):
            nursery.start_soon(run, n)
    assert sorted(n for n, o in outcomes.items() if o == "failed") == list(range(0, 50, 5))
    assert len(outcomes) == 50
    page = await sqlite_db.read(messages.list_messages, conv.id, limit=100, before=None)
    texts = sorted(m.content for m in page.items)
    assert texts == sorted(f"ok{n}" for n in range(50) if n % 5)


async def test_a_cancelled_queued_write_never_runs(sqlite_db: Database) -> None:
    _, _, conv = await make_direct(sqlite_db)
    group = _group(sqlite_db)
    release = trio.Event()
    started = trio.Event()

    def slow(conn: Connection) -> None:
        trio.from_thread.run_sync(started.set)
        trio.from_thread.run(release.wait)
        messages.add_message(conn, conv.id, "user", "first")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sqlite_db.write, slow)
        await started.wait()  # a batch is running: the next write queues
        queued = trio.CancelScope()

        async def queued_write() -> None:
            with queued:
                await sqlite_db.write(messages.add_message, conv.id, "user", "never")

        nursery.start_soon(queued_write)
        await trio.testing.wait_all_tasks_blocked()
        assert group.waiting == 1
        queued.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert group.waiting == 0
        release.set()
    page = await sqlite_db.read(messages.list_messages, conv.id, limit=10, before=None)
    assert [m.content for m in page.items] == ["first"]


class _ThreadDied(BaseException):
    pass


async def test_a_dead_batch_is_never_taken_for_a_result(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, conv = await make_direct(sqlite_db)
    group = _group(sqlite_db)

    def die(batch: object) -> None:
        raise _ThreadDied

    monkeypatch.setattr(group, "_run_batch", die)
    with pytest.raises(_ThreadDied):
        await sqlite_db.write(messages.add_message, conv.id, "user", "lost")
    monkeypatch.undo()
    assert not group.busy and group.waiting == 0
    await sqlite_db.write(messages.add_message, conv.id, "user", "kept")
    page = await sqlite_db.read(messages.list_messages, conv.id, limit=10, before=None)
    assert [m.content for m in page.items] == ["kept"]




async def test_writers_cancelled_as_they_are_handed_the_turn_pass_it_on(
    sqlite_db: Database,
) -> None:
    """The leader of a finished batch wakes the oldest queued writer to lead the next one; a
    writer cancelled in the same scheduler tick must still pass the turn on, or the writers
    behind it wait until some unrelated write arrives (on an idle server, forever)."""
    _, _, conv = await make_direct(sqlite_db)
    group = _group(sqlite_db)
    for trial in range(40):
        with trio.fail_after(10):  # the test fails, rather than hangs, if a write waits forever
            await _cancel_queued_writers_as_a_batch_ends(sqlite_db, conv.id, f"last {trial}")
        assert group.waiting == 0 and not group.busy
    # (a cancelled writer woken first may lead, and take the others: their writes then run,
    # like a write cancelled after it was taken)
    page = await sqlite_db.read(messages.list_messages, conv.id, limit=400, before=None)
    assert sum(m.content.startswith("last") for m in page.items) == 40


async def _cancel_queued_writers_as_a_batch_ends(db: Database, conv_id: int, last: str) -> None:
    """A batch runs; six writers queue behind it, then `last`; the six are cancelled by a task
    woken in the same scheduler tick as the batch's leader (the leader hands the turn to the
    oldest of them before or after they are cancelled); returns once every write finished."""
    group = _group(db)
    queued = [trio.CancelScope() for _ in range(6)]
    release = trio.Event()
    batch_ends = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def slow(conn: Connection) -> None:
        trio.from_thread.run(release.wait)
        messages.add_message(conn, conv_id, "user", "first")
        # queued right before the thread's result: both wake their task in the same tick
        token.run_sync_soon(batch_ends.set)

    async def canceller() -> None:
        await batch_ends.wait()
        for scope in queued:
            scope.cancel()

    async def cancelled_write(n: int) -> None:
        with queued[n]:
            await db.write(messages.add_message, conv_id, "user", f"never {n}")

    async with trio.open_nursery() as nursery:
        try:
            nursery.start_soon(canceller)
            nursery.start_soon(db.write, slow)
            await trio.testing.wait_all_tasks_blocked()
            for n in range(6):
                nursery.start_soon(cancelled_write, n)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(db.write, messages.add_message, conv_id, "user", last)
            await trio.testing.wait_all_tasks_blocked()
            assert group.waiting == 7 and group.busy
        finally:
            release.set()  # the batch runs shielded: it must be let go, even on failure
