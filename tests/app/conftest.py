from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.app.harness import Live, live_server, make_settings


@pytest.fixture
async def live(db_url: str, fake: Any) -> AsyncIterator[Live]:
    async with live_server(make_settings(db_url, fake.base_url)) as server:
        yield server
