"""Another process's generation whose process died: its relayed partial reply is stored
`interrupted`, its followers get `error` `interrupted`, and a process that only lost the
database (its Redis heartbeat lives) keeps its generation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson

from app.services.takeover import partial_replies
from storage import generations
from storage.timestamps import utcnow
from tests.app.harness import Live, live_server, make_settings
from tests.redisutil import REDIS_URL, redis_prefix

DEAD = "deadhost:1:abcd"


def test_partial_replies_of_a_chat_reply() -> None:
    meta = {"conversation_id": "7", "character_id": "3", "parent_id": "41", "kind": "chat"}
    events = [
        ("user_message", {"id": 41}),
        ("delta", {"text": "Once "}),
        ("delta", {"text": "upon"}),
    ]
    [pending] = partial_replies(meta, events)
    assert (pending.conversation_id, pending.role, pending.content) == (7, "assistant", "Once upon")
    assert (pending.character_id, pending.status, pending.parent_id) == (3, "interrupted", 41)
    # finished (a terminal event): its own process saved or kept it
    assert partial_replies(meta, [*events, ("done", {})]) == []
    assert partial_replies(meta, [*events, ("error", {"code": "llm_error"})]) == []
    # nothing said yet: nothing to store
    assert partial_replies(meta, events[:1]) == []


def test_partial_replies_of_a_group_turn_skip_saved_speakers() -> None:
    meta = {"conversation_id": "7", "kind": "group"}
    events = [
        ("delta", {"character_id": 1, "text": "A1"}),
        ("delta", {"character_id": 2, "text": "B1"}),
        ("reply", {"character_id": 1, "content": "A1"}),
        ("delta", {"character_id": 2, "text": "B2"}),
        ("delta", {"character_id": 3, "text": "C1"}),
    ]
    pending = partial_replies(meta, events)
    assert [(p.character_id, p.content, p.parent_id) for p in pending] == [
        (2, "B1B2", "active_leaf"),
        (3, "C1", "active_leaf"),
    ]


async def _dead_generation(
    live: Live, conversation_id: int, character_id: str, *, heartbeat: bool
) -> int:
    """A generation row of a process that stopped renewing it, with what it had relayed."""
    services = live.services
    now = utcnow()
    generation_id = await services.db.write(
        lambda conn: generations.begin_generation(
            conn, conversation_id, owner=DEAD, lease_seconds=1, now=now - timedelta(seconds=5)
        )
    )
    assert generation_id is not None
    relay = services.lifecycle.relay
    client = relay.link.client
    await client.hset(
        relay.meta_key(generation_id),
        {"conversation_id": str(conversation_id), "kind": "chat", "character_id": character_id},
    )
    for index, text in enumerate(["The ", "dragon ", "sleeps"], start=1):
        fields = {"e": "delta", "d": orjson.dumps({"text": text})}
        await client.xadd(relay.stream_key(generation_id), fields, identifier=f"0-{index}")
    if heartbeat:
        await client.set(relay.link.key("proc", DEAD), b"1", ex=60)
    return generation_id


async def test_a_dead_process_generation_is_taken_over(db_url: str, fake: Any) -> None:
    async with redis_prefix() as prefix:
        settings = make_settings(db_url, fake.base_url, redis_url=REDIS_URL, redis_prefix=prefix)
        async with live_server(settings) as live:
            alice = await live.register()
            mira = await alice.character()
            chat = f"/api/characters/{mira['id']}/chat"
            r = await alice.request("POST", chat, json={"content": "tell me a story"})
            assert r.status_code == 200, r.text
            services = live.services
            conversation_id = await services.chat.conversation_id(
                int(alice.user["id"]), int(mira["id"])
            )

            # alive elsewhere (its heartbeat is fresh), only cut off from the database: kept
            generation_id = await _dead_generation(
                live, conversation_id, mira["id"], heartbeat=True
            )
            await services.takeover.sweep_once()
            rows = await services.db.read(generations.expired_generations, now=utcnow())
            assert (generation_id, DEAD) in rows
            link = services.lifecycle.relay.link
            await link.client.delete([link.key("proc", DEAD)])

            # dead: taken over once (however many sweeps), its text stored interrupted
            await services.takeover.sweep_once()
            await services.takeover.sweep_once()
            assert await services.db.read(generations.expired_generations, now=utcnow()) == []
            items = (await alice.request("GET", f"{chat}/messages")).json()["items"]
            stored = [m for m in items if m["status"] == "interrupted"]
            assert [(m["content"], m["character_id"]) for m in stored] == [
                ("The dragon sleeps", mira["id"])
            ]
            assert items[-1] == stored[0]
            # its stream ends with `error` `interrupted`, and a follower resuming gets it
            relay = services.lifecycle.relay
            events = await relay.read_all(generation_id)
            assert events[-1] == ("error", events[-1][1]) and events[-1][1]["code"] == "interrupted"
            last_id = generation_id * 1_000_000 + 3
            async with alice.stream(
                f"{chat}/stream", method="GET", headers={"Last-Event-ID": str(last_id)}
            ) as sse:
                assert [(i, n) for i, n, _ in await _all(sse)] == [(last_id + 1, "error")]


async def _all(sse: Any) -> list[Any]:
    return [event async for event in sse]
