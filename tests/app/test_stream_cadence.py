"""API.md's streaming cadence end to end: at light load every token is its own `delta`."""

from __future__ import annotations

from typing import Any

from tests.app.harness import Live


async def test_each_token_is_relayed_as_it_arrives(live: Live, fake: Any) -> None:
    # Tokens 30 ms apart; with at most 64 open streams each must reach the client within
    # 50 ms, so no `delta` may carry two of them (the old 0.1 s read cadence grouped ~3).
    alice = await live.register()
    mira = await alice.character("Mira")
    body = {"content": "Hello [[fake:tokens=10]] [[fake:tps=33.3]] [[fake:chunk=3]]"}
    async with alice.stream(f"/api/characters/{mira['id']}/chat", body) as sse:
        events = await sse.collect()
    deltas = [d["text"] for n, d in events if n == "delta"]
    assert [n for n, _ in events][-2:] == ["reply", "done"]
    assert "".join(deltas) == events[-2][1]["content"] == fake.requests[-1].reply
    assert len(deltas) == 10
