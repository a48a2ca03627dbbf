"""Start the fake OpenAI-compatible upstream (`llm.fake`) for a test.

    fake = await start_fake(nursery, tokens=5, first_token_delay=0)
    client = httpx.AsyncClient(base_url=fake.base_url)

Keyword arguments are `FakeBehaviour` fields. The server listens on 127.0.0.1 port 0 and stops
when the nursery is cancelled (pytest-trio's ``nursery`` fixture does that at the end of a test).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import trio

from llm.fake import FakeBehaviour, FakeUpstream, serve_fake_upstream

TEST_DEFAULTS: dict[str, Any] = {
    "first_token_delay": 0.05,
    "tokens": 20,
    "tokens_per_second": 0.0,
    "keepalive_interval": 0.02,
}


async def start_fake(nursery: trio.Nursery, **behaviour: Any) -> FakeUpstream:
    """Start the fake in ``nursery`` with test defaults overridden by ``behaviour``."""
    settings = FakeBehaviour(**{**TEST_DEFAULTS, **behaviour})
    fake: FakeUpstream = await nursery.start(partial(serve_fake_upstream, behaviour=settings))
    return fake
