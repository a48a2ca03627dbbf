"""The async face of the storage layer: ``open_database`` and ``Database``.

Query functions are plain synchronous functions taking a SQLAlchemy
``Connection`` already inside a transaction. ``Database.read``/``write`` run
one of them in a worker thread (``trio.to_thread.run_sync`` behind a
``CapacityLimiter`` sized to the pool), commit on success and roll back on an
exception. The worker thread is not abandoned on cancellation: a write that
started always finishes (committed or rolled back) before the caller sees
``Cancelled``.

SQLite allows one writer: writes begin with ``BEGIN IMMEDIATE`` (other processes
are waited for via ``busy_timeout``) and go through ``GroupCommit``, which runs the
writes queued together in one transaction, each in its own savepoint; reads run
concurrently on their own connections (WAL).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Concatenate, ParamSpec, TypeVar

import trio
from sqlalchemy import Connection, Engine, select

from .engine import IMMEDIATE, Dialect, create_database_engine, dialect_of, is_memory_sqlite
from .errors import translated_errors
from .group_commit import GroupCommit
from .migrate import run_migrations

P = ParamSpec("P")
T = TypeVar("T")


class Database:
    """An open database: run query functions with ``read``/``write``."""

    url: str
    dialect: Dialect

    def __init__(self, url: str, engine: Engine, *, pool_size: int) -> None:
        self.url = url
        self.dialect = dialect_of(url)
        self._engine = engine
        self._pool_size = pool_size
        self._group_commit: GroupCommit | None = None
        if self.dialect == "postgresql":
            self._limiter = trio.CapacityLimiter(pool_size)
        elif is_memory_sqlite(engine.url):
            # A single shared connection: everything in turn.
            self._limiter = trio.CapacityLimiter(1)
        else:
            self._limiter = trio.CapacityLimiter(pool_size)  # readers; writes are grouped
            self._group_commit = GroupCommit(partial(self._run, True))

    @property
    def engine(self) -> Engine:
        """The underlying SQLAlchemy engine (for tests and tools; blocking API)."""
        return self._engine

    async def read(
        self, fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(conn, *args, **kwargs)`` in a read transaction in a worker thread."""

        def call(conn: Connection) -> T:
            return fn(conn, *args, **kwargs)

        return await trio.to_thread.run_sync(self._run, False, call, limiter=self._limiter)

    async def write(
        self, fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(conn, *args, **kwargs)`` in a write transaction in a worker thread.

        Committed when ``fn`` returns, rolled back when it raises.
        """

        def call(conn: Connection) -> T:
            return fn(conn, *args, **kwargs)

        if self._group_commit is not None:
            return await self._group_commit.write(call)
        return await trio.to_thread.run_sync(self._run, True, call, limiter=self._limiter)

    async def ping(self) -> None:
        """Check the database answers; raises ``StorageUnavailable`` if not."""
        await self.read(_select_one)

    def statistics(self) -> dict[str, int]:
        """Pool and thread-limiter figures for health and admin views."""
        threads = self._limiter.statistics()
        borrowed, waiting = threads.borrowed_tokens, threads.tasks_waiting
        writers_waiting = waiting  # writes share the threads with reads
        group = self._group_commit
        if group is not None:
            writers_waiting = group.waiting
            borrowed += int(group.busy)
            waiting += group.waiting
        pool = self._engine.pool
        checked_out = pool.checkedout() if hasattr(pool, "checkedout") else 0
        return {
            "pool_size": self._pool_size,
            "threads_borrowed": borrowed,
            "threads_waiting": waiting,
            "writers_waiting": writers_waiting,
            "connections_checked_out": int(checked_out),
        }

    def _run(self, write: bool, fn: Callable[[Connection], T]) -> T:
        with translated_errors(), self._engine.connect() as conn:
            if write and self.dialect == "sqlite":
                conn.execution_options(**{IMMEDIATE: True})
            with conn.begin():
                return fn(conn)


def _select_one(conn: Connection) -> None:
    conn.execute(select(1)).scalar_one()


@asynccontextmanager
async def open_database(
    url: str, *, pool_size: int = 10, migrate: bool = True
) -> AsyncIterator[Database]:
    """Open the database at ``url`` (migrating it to head first unless ``migrate=False``).

    ``url`` is ``sqlite:///path`` or ``postgresql://user:pass@host:port/db``. The
    engine is disposed when the block exits.
    """
    if pool_size < 1:
        raise ValueError("pool_size must be at least 1")
    engine = create_database_engine(url, pool_size=pool_size)
    try:
        if migrate:
            await trio.to_thread.run_sync(_migrate, engine)
        yield Database(url, engine, pool_size=pool_size)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(engine.dispose)


def _migrate(engine: Engine) -> None:
    with translated_errors():
        run_migrations(engine)
