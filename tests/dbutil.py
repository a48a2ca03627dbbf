"""Throwaway databases for tests, on every backend under test.

``DB_KINDS`` is ``["sqlite"]`` plus ``"postgresql"`` when
``FASTNPC_TEST_POSTGRES_URL`` is set (CI sets it; then an unreachable server is
an error, never a skip). ``temp_database_url(kind, tmp_path)`` yields the URL
of an empty database and removes it afterwards: a file under ``tmp_path`` for
SQLite, a fresh schema (selected through ``search_path`` in the URL) for
PostgreSQL.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import psycopg
import trio

DbKind = Literal["sqlite", "postgresql"]

POSTGRES_URL_ENV = "FASTNPC_TEST_POSTGRES_URL"

DB_KINDS: list[DbKind] = ["sqlite"] + (["postgresql"] if os.environ.get(POSTGRES_URL_ENV) else [])


def postgres_server_url() -> str:
    """The PostgreSQL server the tests may use (KeyError when not configured)."""
    return os.environ[POSTGRES_URL_ENV]


def _execute(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


def with_search_path(url: str, schema: str) -> str:
    """``url`` with an ``options`` query parameter selecting ``schema`` first."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}', safe='')}"


def _create(kind: DbKind, tmp_path: Path) -> tuple[str, str | None]:
    """A new empty database: its URL and the PostgreSQL schema to drop (None for SQLite)."""
    name = f"t_{secrets.token_hex(6)}"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / f'{name}.db'}", None
    _execute(postgres_server_url(), f"CREATE SCHEMA {name}")
    return with_search_path(postgres_server_url(), name), name


def _drop(schema: str | None) -> None:
    if schema is not None:
        _execute(postgres_server_url(), f"DROP SCHEMA {schema} CASCADE")


@contextmanager
def temp_database_url_sync(kind: DbKind, tmp_path: Path) -> Iterator[str]:
    """Blocking form of ``temp_database_url`` (for threads and plain scripts)."""
    url, schema = _create(kind, tmp_path)
    try:
        yield url
    finally:
        _drop(schema)


@asynccontextmanager
async def temp_database_url(kind: DbKind, tmp_path: Path) -> AsyncIterator[str]:
    """Yield the URL of an empty database of ``kind``; drop it afterwards."""
    url, schema = await trio.to_thread.run_sync(_create, kind, tmp_path)
    try:
        yield url
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(_drop, schema)
