"""Alembic migrations, run programmatically (no ``alembic.ini`` needed).

The migration scripts live in ``storage/migrations``. ``run_migrations`` brings
a database to the newest revision inside one transaction that first takes a
lock (``pg_advisory_xact_lock`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite),
so several processes starting at once migrate one after the other.

For developers: ``alembic -c storage/migrations/alembic.ini revision -m ...``
(with ``-x url=...`` for autogenerate) works with the shipped ini.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from .engine import IMMEDIATE, create_database_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Arbitrary constant shared by every FastNPC process: the migration lock.
_ADVISORY_LOCK_KEY = 0x46A57_4E5C


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic ``Config`` pointing at the packaged scripts (and ``connection``)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision id of the packaged migrations."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database behind ``connection`` is at (None when empty)."""
    return MigrationContext.configure(connection).get_current_revision()


def run_migrations(engine: Engine) -> None:
    """Upgrade the database behind ``engine`` to head (blocking; idempotent)."""
    with engine.connect() as connection:
        connection.execution_options(**{IMMEDIATE: True})
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY}
                )
            command.upgrade(alembic_config(connection), "head")


def upgrade(url: str) -> None:
    """Upgrade the database at ``url`` to the newest schema (sync; for ``fastnpc db upgrade``)."""
    engine = create_database_engine(url, pool_size=1)
    try:
        run_migrations(engine)
    finally:
        engine.dispose()
