from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from llm.fake import FakeUpstream
from tests.fakeupstream import start_fake
from tests.llm.fake.wire import AUTH


@pytest.fixture
async def upstream(nursery: trio.Nursery) -> FakeUpstream:
    return await start_fake(nursery)


@pytest.fixture
async def client(upstream: FakeUpstream) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=upstream.base_url, headers=AUTH, timeout=10) as c:
        yield c
