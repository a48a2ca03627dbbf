"""Migrations from an empty database, idempotence, concurrency, and schema drift."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import trio
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from storage import StorageUnavailable, open_database, upgrade
from storage.engine import create_database_engine
from storage.migrate import current_revision, head_revision
from storage.schema import metadata
from tests.dbutil import DB_KINDS, postgres_server_url, with_search_path

TABLES = {
    "users",
    "api_tokens",
    "characters",
    "conversations",
    "messages",
    "memories",
    "groups",
    "group_members",
    "generations",
    "jobs",
    "avatars",
    "personas",
    "lorebooks",
    "lorebook_entries",
    "character_lorebooks",
    "group_lorebooks",
}


def _inspect(url: str) -> tuple[set[str], str | None, list[object]]:
    engine = create_database_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            revision = current_revision(conn)
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        return tables, revision, diff
    finally:
        engine.dispose()


async def test_upgrade_from_empty_creates_every_table(storage_url: str) -> None:
    tables, revision, _ = await trio.to_thread.run_sync(_inspect, storage_url)
    assert tables == set() and revision is None

    await trio.to_thread.run_sync(upgrade, storage_url)

    tables, revision, diff = await trio.to_thread.run_sync(_inspect, storage_url)
    assert tables == TABLES | {"alembic_version"}
    assert revision == head_revision()
    # The migrations build exactly what storage/schema.py describes.
    assert diff == []


async def test_upgrade_is_idempotent_and_open_database_migrates(storage_url: str) -> None:
    async with open_database(storage_url) as db:
        await db.ping()
    await trio.to_thread.run_sync(upgrade, storage_url)
    async with open_database(storage_url, migrate=True) as db:
        await db.ping()
    _, revision, _ = await trio.to_thread.run_sync(_inspect, storage_url)
    assert revision == head_revision()


async def test_concurrent_upgrades_take_turns(storage_url: str) -> None:
    """Several processes starting at once must not trip over each other's migration."""
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def run() -> None:
        start.wait()
        try:
            upgrade(storage_url)
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        await trio.to_thread.run_sync(thread.join)
    assert errors == []
    _, revision, diff = await trio.to_thread.run_sync(_inspect, storage_url)
    assert revision == head_revision() and diff == []


async def test_open_without_migrate_leaves_database_empty(storage_url: str) -> None:
    async with open_database(storage_url, migrate=False) as db:
        await db.ping()
    tables, _, _ = await trio.to_thread.run_sync(_inspect, storage_url)
    assert tables == set()


async def test_unreachable_postgres_is_storage_unavailable() -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    with pytest.raises(StorageUnavailable):
        async with open_database("postgresql://nobody@127.0.0.1:1/none"):
            pass


async def test_unsupported_url_is_rejected() -> None:
    with pytest.raises(ValueError, match="unsupported database URL"):
        async with open_database("mysql://localhost/x"):
            pass


def test_sqlite_connections_use_wal_and_foreign_keys(tmp_path: Path) -> None:
    engine = create_database_engine(f"sqlite:///{tmp_path / 'p.db'}", pool_size=1)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0
    finally:
        engine.dispose()
    # Plain engines (without our settings) see the database file as WAL too.
    plain = create_engine(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        with plain.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        plain.dispose()


@pytest.mark.skipif("postgresql" not in DB_KINDS, reason="FASTNPC_TEST_POSTGRES_URL not set")
def test_postgres_url_keeps_search_path_and_adds_statement_timeout() -> None:
    url = with_search_path(postgres_server_url(), "pg_catalog")
    engine = create_database_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "15s"
            assert conn.exec_driver_sql("SHOW search_path").scalar() == "pg_catalog"
            assert engine.url.drivername == "postgresql+psycopg"
    finally:
        engine.dispose()
