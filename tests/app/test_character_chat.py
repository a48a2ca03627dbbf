"""A character's card fields at work in chat through HTTP: the greeting and its alternates
opening an empty conversation, macros, the persona in prompts, per-character model settings
and fallbacks, and the prompt language."""

from __future__ import annotations

from typing import Any

import trio

from tests.app.harness import Live, Session


async def greeted(s: Session, **fields: Any) -> dict[str, Any]:
    body = {
        "name": "Mira",
        "greeting": "Hello {{USER}}, I am {{char}}.",
        "alternate_greetings": ["Oh, {{user}} again.", "{{Char}} waves."],
    } | fields
    r = await s.request("POST", "/api/characters", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def history(s: Session, cid: str) -> list[dict[str, Any]]:
    r = await s.request("GET", f"/api/characters/{cid}/chat/messages")
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def test_greeting_and_alternates_open_the_conversation(live: Live, fake: Any) -> None:
    alice = await live.register("alice")
    character = await greeted(alice)
    cid = character["id"]
    items = await history(alice, cid)
    assert len(items) == 1
    first = items[0]
    assert first["content"] == "Hello alice, I am Mira."
    assert first["role"] == "assistant" and first["status"] == "complete"
    assert first["character_id"] == cid and first["parent_id"] is None
    assert (first["sibling_index"], first["sibling_count"]) == (0, 3)
    assert await history(alice, cid) == items  # stored once

    # the alternates are siblings: selecting one makes it the opening message
    r = await alice.request("GET", f"/api/characters/{cid}/chat/export")
    assert r.status_code == 200, r.text
    roots = [m for m in r.json()["messages"] if m["parent_id"] is None]
    assert [m["content"] for m in roots] == [
        "Hello alice, I am Mira.",
        "Oh, alice again.",
        "Mira waves.",
    ]
    r = await alice.request("POST", f"/api/characters/{cid}/chat/messages/{roots[2]['id']}/select")
    assert r.status_code == 200, r.text
    assert [m["content"] for m in r.json()["items"]] == ["Mira waves."]

    # a reply follows the greeting, which the model sees as the character's first line
    r = await alice.request("POST", f"/api/characters/{cid}/chat", json={"content": "Hi!"})
    assert r.status_code == 200, r.text
    assert [m["content"] for m in (await history(alice, cid))[:2]] == ["Mira waves.", "Hi!"]
    prompt = fake.requests[-1].messages
    assert prompt[-2] == {"role": "assistant", "content": "Mira waves."}


async def test_first_message_sent_is_greeted_once_under_races(live: Live) -> None:
    alice = await live.register()
    await alice.request("PUT", "/api/me/persona", json={"name": "Bao"})
    character = await greeted(alice, alternate_greetings=[])
    cid = character["id"]

    async def read() -> None:
        await history(alice, cid)

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(read)
    items = await history(alice, cid)
    assert [m["content"] for m in items] == ["Hello Bao, I am Mira."]
    assert items[0]["sibling_count"] == 1


async def test_no_greeting_no_opening(live: Live) -> None:
    alice = await live.register()
    character = await alice.character()
    assert await history(alice, character["id"]) == []
    r = await alice.request(
        "POST", f"/api/characters/{character['id']}/chat", json={"content": "Hi"}
    )
    assert r.status_code == 200, r.text
    assert [m["role"] for m in await history(alice, character["id"])] == ["user", "assistant"]


async def test_first_message_sent_stores_the_greeting_first(live: Live) -> None:
    alice = await live.register()
    character = await greeted(alice, alternate_greetings=[])
    r = await alice.request(
        "POST", f"/api/characters/{character['id']}/chat", json={"content": "Hi"}
    )
    assert r.status_code == 200, r.text
    items = await history(alice, character["id"])
    assert [m["content"] for m in items[:2]] == ["Hello alice, I am Mira.", "Hi"]
