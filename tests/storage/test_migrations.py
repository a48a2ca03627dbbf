"""Migrations from an empty database, idempotence, concurrency, and schema drift."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
import trio
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from storage import StorageUnavailable, UsernameTaken, open_database, upgrade, users
from storage.engine import create_database_engine
from storage.migrate import alembic_config, current_revision, head_revision
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
    "memory_messages",
    "lorebooks",
    "lorebook_entries",
    "character_lorebooks",
    "group_lorebooks",
    "user_settings",
    "usage_daily",
    "feedback",
    "prompt_snapshots",
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


def _upgrade_to(url: str, revision: str) -> None:
    engine = create_database_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), revision)
    finally:
        engine.dispose()


async def test_0002_keeps_accounts_that_differ_only_by_case_and_reports_them(
    storage_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Usernames became unique case-insensitively: older clashing accounts are listed in a
    warning, none is lost, each still logs in with its exact name."""
    await trio.to_thread.run_sync(_upgrade_to, storage_url, "0001")
    names = ["rootadmin", "ROOTADMIN", "bob", "RootAdmin", "carol", "Carol"]

    def seed() -> None:
        engine = create_database_engine(storage_url, pool_size=1)
        try:
            with engine.begin() as conn:
                for name in names:
                    conn.execute(
                        text(
                            "INSERT INTO users (username, password_hash, is_admin, disabled,"
                            " created_at) VALUES (:name, :hash, false, false, :at)"
                        ),
                        {"name": name, "hash": f"hash-of-{name}", "at": "2026-11-27 20:00:00"},
                    )
        finally:
            engine.dispose()

    await trio.to_thread.run_sync(seed)
    with caplog.at_level(logging.WARNING, logger="storage.migrations"):
        await trio.to_thread.run_sync(upgrade, storage_url)
    warnings = [r.getMessage() for r in caplog.records if r.name == "storage.migrations"]
    assert len(warnings) == 1
    for clashing in ("'rootadmin'", "'ROOTADMIN'", "'RootAdmin'", "'carol'", "'Carol'"):
        assert clashing in warnings[0]
    assert "'bob'" not in warnings[0]
    _, revision, diff = await trio.to_thread.run_sync(_inspect, storage_url)
    assert revision == head_revision() and diff == []

    async with open_database(storage_url) as db:
        listed = [u.user.username for u in await db.read(users.list_users_with_counts)]
        assert listed == names
        for name in names:  # every account still logs in under its exact name
            creds = await db.read(users.get_credentials, name)
            assert creds is not None and creds.password_hash == f"hash-of-{name}"
        # another case finds the oldest of a clashing set
        creds = await db.read(users.get_credentials, "RootAdmiN")
        assert creds is not None and creds.user.username == "rootadmin"
        for taken in ("ROOTadmin", "BOB", "cAROL"):
            with pytest.raises(UsernameTaken):
                await db.write(users.create_user, taken, "h")
        assert (await db.write(users.create_user, "Dave", "h")).username == "Dave"


async def test_0002_downgrades(storage_url: str) -> None:
    await trio.to_thread.run_sync(upgrade, storage_url)

    def downgrade() -> list[str]:
        engine = create_database_engine(storage_url, pool_size=1)
        try:
            with engine.begin() as conn:
                command.downgrade(alembic_config(conn), "0001")
                return [c["name"] for c in inspect(conn).get_columns("users")]
        finally:
            engine.dispose()

    assert "username_key" not in await trio.to_thread.run_sync(downgrade)
