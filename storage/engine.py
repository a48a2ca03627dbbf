"""Engines for the two supported URLs, configured the same way everywhere.

* ``sqlite:///path``: stdlib ``sqlite3``; WAL, ``busy_timeout``, foreign keys on,
  ``synchronous=NORMAL``. The driver's own transaction handling is switched off
  and transactions are begun explicitly: ``BEGIN IMMEDIATE`` for writes (a
  connection with ``execution_options(sqlite_immediate=True)``), a deferred
  ``BEGIN`` for reads.
* ``postgresql://…``: psycopg 3 (``postgresql+psycopg://``), a ``QueuePool``
  with pre-ping and a bounded wait, a connect timeout and a per-statement
  ``statement_timeout``.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any, Literal

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

Dialect = Literal["sqlite", "postgresql"]

SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_STATEMENT_TIMEOUT_MS = 15_000
POSTGRES_CONNECT_TIMEOUT_S = 5
POOL_TIMEOUT_S = 10.0

IMMEDIATE = "sqlite_immediate"


def dialect_of(url: str) -> Dialect:
    """Which backend a database URL names; raises ValueError for anything else."""
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return "sqlite"
    if backend in ("postgresql", "postgres"):
        return "postgresql"
    raise ValueError(f"unsupported database URL (want sqlite:/// or postgresql://): {url!r}")


def is_memory_sqlite(url: URL) -> bool:
    """True for an in-memory SQLite URL (``sqlite://`` or ``sqlite:///:memory:``)."""
    return url.database in (None, "", ":memory:")


def create_database_engine(url: str, *, pool_size: int) -> Engine:
    """A configured SQLAlchemy engine for ``url`` with room for ``pool_size`` connections."""
    if dialect_of(url) == "sqlite":
        return _sqlite_engine(make_url(url), pool_size=pool_size)
    return _postgres_engine(make_url(url), pool_size=pool_size)


def _sqlite_engine(url: URL, *, pool_size: int) -> Engine:
    url = url.set(drivername="sqlite+pysqlite")
    connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": 30}
    if is_memory_sqlite(url):
        # One shared connection; Database serialises every call onto it.
        engine = create_engine(url, connect_args=connect_args, poolclass=StaticPool)
    else:
        engine = create_engine(
            url,
            connect_args=connect_args,
            pool_size=pool_size + 1,  # readers + the single writer
            max_overflow=0,
            pool_timeout=POOL_TIMEOUT_S,
        )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Take transaction control away from the driver; see _on_begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            _ensure_wal(cursor)
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _ensure_wal(cursor: sqlite3.Cursor) -> None:
    """Switch the database file to WAL (persistent), waiting out concurrent switchers.

    Changing the journal mode needs an exclusive lock and SQLite reports
    "database is locked" at once instead of calling the busy handler, so
    several processes opening a new file together retry here.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.001
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _postgres_engine(url: URL, *, pool_size: int) -> Engine:
    query = dict(url.query)
    # Keep any options given in the URL (e.g. a search_path) and add ours.
    given = query.pop("options", "")
    options = " ".join(
        part
        for part in (
            given if isinstance(given, str) else " ".join(given),
            f"-c statement_timeout={POSTGRES_STATEMENT_TIMEOUT_MS}",
        )
        if part
    )
    url = url.set(drivername="postgresql+psycopg", query=query)
    return create_engine(
        url,
        connect_args={"options": options, "connect_timeout": POSTGRES_CONNECT_TIMEOUT_S},
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=POOL_TIMEOUT_S,
        pool_pre_ping=True,
    )
