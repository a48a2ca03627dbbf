"""Soak: many users each sending messages back to back (the next as soon as the previous reply
arrives) while memory compression keeps triggering: no 5xx, no 409, every message answered and
stored `complete`."""

from __future__ import annotations

from collections import Counter
from typing import Any

import trio

from tests.app.harness import Live, Session, live_server, make_settings

USERS = 50
MESSAGES = 20


async def _user(live: Live, index: int, statuses: Counter[int]) -> tuple[Session, str]:
    alice = await live.register(f"soak{index}")
    mira = await alice.character(f"Mira{index}")
    path = f"/api/characters/{mira['id']}/chat"
    for i in range(MESSAGES):
        async with alice.stream(path, {"content": f"message {i} from {index}"}) as sse:
            statuses[sse.response.status_code] += 1
            if sse.response.status_code != 200:
                await sse.response.aread()
                continue
            names = [name async for _, name, _ in sse]
            statuses[1000 + (names[-1] == "done")] += 1  # 1001: ended with done
    return alice, mira["id"]


async def test_soak_back_to_back_messages_with_compression(db_url: str, fake: Any) -> None:
    settings = make_settings(
        db_url, fake.base_url, memory_trigger_messages=8, memory_keep_recent=4
    )
    statuses: Counter[int] = Counter()
    sessions: list[tuple[Session, str]] = []
    async with live_server(settings) as live:

        async def one(index: int) -> None:
            sessions.append(await _user(live, index, statuses))

        with trio.fail_after(600):
            async with trio.open_nursery() as nursery:
                for index in range(USERS):
                    nursery.start_soon(one, index)
            await live.services.memory.wait_idle()
        assert statuses == Counter({200: USERS * MESSAGES, 1001: USERS * MESSAGES})
        for alice, character_id in sessions:
            r = await alice.request(
                "GET", f"/api/characters/{character_id}/chat/messages", params={"limit": 200}
            )
            items = r.json()["items"]
            assert [m["role"] for m in items] == ["user", "assistant"] * MESSAGES
            assert all(m["status"] == "complete" for m in items)
            memories = await alice.request("GET", f"/api/characters/{character_id}/chat/memories")
            assert memories.json()["items"], "compression ran"
        tasks = live.services.memory.health()
        assert all(report.get("status") == "ok" for report in tasks.values()), tasks
