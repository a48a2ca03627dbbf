"""Fixtures for storage tests: one fresh, migrated database per test and backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage import Database, open_database
from tests.dbutil import DB_KINDS, DbKind, temp_database_url


@pytest.fixture(params=DB_KINDS)
def db_kind(request: pytest.FixtureRequest) -> DbKind:
    kind: DbKind = request.param
    return kind


@pytest.fixture
async def storage_url(db_kind: DbKind, tmp_path: Path) -> AsyncIterator[str]:
    async with temp_database_url(db_kind, tmp_path) as url:
        yield url


@pytest.fixture
async def db(storage_url: str) -> AsyncIterator[Database]:
    async with open_database(storage_url) as database:
        yield database
