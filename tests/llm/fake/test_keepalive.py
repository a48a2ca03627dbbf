"""Keep-alive connections reused concurrently: every request on a reused connection is served."""

from __future__ import annotations

import httpx
import trio

from tests.fakeupstream import start_fake
from tests.llm.fake.wire import AUTH, chat, parse_events

ROUNDS = 3
CONCURRENCY = 40


async def test_concurrent_rounds_on_reused_connections_all_complete(
    nursery: trio.Nursery,
) -> None:
    fake = await start_fake(nursery, tokens=5, tokens_per_second=0, first_token_delay=0.01)
    bodies: list[str] = []
    failures: list[str] = []

    async def one(client: httpx.AsyncClient, n: int) -> None:
        try:
            async with client.stream("POST", "/chat/completions", json=chat(f"q{n}")) as r:
                assert r.status_code == 200
                bodies.append((await r.aread()).decode())
        except httpx.HTTPError as exc:
            failures.append(f"{n}: {exc!r}")

    # A long keep-alive expiry: on a loaded machine a round can outlast httpx's default 5 s and
    # the client would then (rightly) replace idle connections, which is not what is tested here.
    limits = httpx.Limits(max_connections=CONCURRENCY, keepalive_expiry=120)
    with trio.fail_after(120):  # safety bound only; a hang fails here instead of forever
        async with httpx.AsyncClient(
            base_url=fake.base_url, headers=AUTH, limits=limits, timeout=None
        ) as client:
            for round_ in range(ROUNDS):
                async with trio.open_nursery() as requests:
                    for i in range(CONCURRENCY):
                        requests.start_soon(one, client, round_ * CONCURRENCY + i)

    assert failures == []
    assert len(bodies) == ROUNDS * CONCURRENCY
    for body in bodies:
        data = [e.data for e in parse_events(body) if e.data is not None]
        assert data[-1] == "[DONE]"
        assert len(data) == 5 + 2 + 1  # content chunks, finish, usage, [DONE]
    assert fake.completed == ROUNDS * CONCURRENCY
    assert fake.disconnects == 0
    assert fake.internal_errors == []
    assert fake.connections_total <= CONCURRENCY
