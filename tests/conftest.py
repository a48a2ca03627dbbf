"""Shared fixtures: a database per test (SQLite, and PostgreSQL when configured), the fake LLM
upstream over real HTTP, and a live FastNPC server on 127.0.0.1 port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from tests.dbutil import DB_KINDS, temp_database_url
from tests.fakeupstream import start_fake


@pytest.fixture(params=DB_KINDS)
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with temp_database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
async def fake(nursery: trio.Nursery):  # type: ignore[no-untyped-def]
    return await start_fake(nursery, first_token_delay=0.01, tokens=12, tokens_per_second=0)
