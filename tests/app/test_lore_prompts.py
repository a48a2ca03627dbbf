"""Lore in prompts over HTTP on both backends: what reaches the fake upstream, the `lore` event
before the first `delta`, the JSON `lore` field, groups (union over speakers), budget."""

from __future__ import annotations

from typing import Any

from tests.app.harness import Live, Session


async def lorebook(session: Session, *entries: dict[str, Any], **fields: Any) -> dict[str, Any]:
    body = {"name": "World", **fields, "entries": list(entries)}
    r = await session.request("POST", "/api/lorebooks", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def attach(session: Session, path: str, *books: dict[str, Any]) -> None:
    r = await session.request("PUT", path, json={"lorebook_ids": [b["id"] for b in books]})
    assert r.status_code == 200, r.text


def system_prompts(fake: Any, since: int) -> list[str]:
    return [r.messages[0]["content"] for r in fake.requests[since:] if r.messages]


async def test_a_chat_that_mentions_a_key_gets_the_entry_and_a_lore_event(
    live: Live, fake: Any
) -> None:
    alice = await live.register()
    mira = await alice.character("Mira", identity={"occupation": "healer"})
    tom = await alice.character("Tom", identity={"occupation": "smith"})
    book = await lorebook(
        alice,
        {"keys": ["dragon"], "content": "LORE-BEFORE: dragons sleep under the hill."},
        {
            "keys": ["dragon"],
            "content": "LORE-AFTER: the dragon is called Ysra.",
            "position": "after_char",
        },
        {"keys": ["長安", "长安"], "content": "LORE-ZH: 长安是都城。"},
    )
    before_id, after_id, zh_id = (e["id"] for e in book["entries"])
    for character in (mira, tom):
        await attach(alice, f"/api/characters/{character['id']}/lorebooks", book)

    since = len(fake.requests)
    async with alice.stream(
        f"/api/characters/{mira['id']}/chat", {"content": "Tell me about the DRAGON."}
    ) as sse:
        events = await sse.collect()
    names = [name for name, _ in events]
    assert names.index("user_message") < names.index("lore") < names.index("delta")
    assert dict(events)["lore"] == {"entry_ids": [before_id, after_id]}
    assert names[-1] == "done"
    (system,) = system_prompts(fake, since)
    profile = system.index("You are Mira.")
    assert system.index("LORE-BEFORE") < profile < system.index("LORE-AFTER")
    assert "LORE-ZH" not in system

    # JSON: a Chinese key as a substring, no word boundaries needed
    since = len(fake.requests)
    r = await alice.request(
        "POST", f"/api/characters/{mira['id']}/chat", json={"content": "我们去长安城吧"}
    )
    assert r.status_code == 200
    assert r.json()["lore"] == [before_id, after_id, zh_id]  # "dragon" is within scan depth
    assert "LORE-ZH: 长安是都城。" in system_prompts(fake, since)[0]

    # regenerate answers the same message with the same lore
    r = await alice.request("POST", f"/api/characters/{mira['id']}/chat/regenerate")
    assert r.status_code == 200 and r.json()["lore"] == [before_id, after_id, zh_id]

    # a chat that mentions no key: no entry, no event
    since = len(fake.requests)
    async with alice.stream(
        f"/api/characters/{tom['id']}/chat", {"content": "Good morning, smith."}
    ) as sse:
        events = await sse.collect()
    assert "lore" not in [name for name, _ in events]
    assert all("LORE-" not in s for s in system_prompts(fake, since))
    r = await alice.request(
        "POST", f"/api/characters/{tom['id']}/chat", json={"content": "Nice weather."}
    )
    assert r.json()["lore"] == []


async def test_scan_depth_budget_and_detaching(live: Live, fake: Any) -> None:
    alice = await live.register()
    mira = await alice.character("Mira")
    book = await lorebook(
        alice,
        {"keys": ["relic"], "content": "LORE-RELIC " + "r" * 90, "priority": 1},
        {"keys": ["relic"], "content": "LORE-SHRINE " + "s" * 90, "priority": 9},
        scan_depth=1,
        token_budget=40,
    )
    relic_id, shrine_id = (e["id"] for e in book["entries"])
    path = f"/api/characters/{mira['id']}/chat"
    await attach(alice, f"/api/characters/{mira['id']}/lorebooks", book)

    since = len(fake.requests)
    r = await alice.request("POST", path, json={"content": "Where is the relic?"})
    assert r.json()["lore"] == [shrine_id]  # the low-priority entry does not fit the budget
    assert relic_id not in r.json()["lore"]
    (system,) = system_prompts(fake, since)
    assert "LORE-SHRINE" in system and "LORE-RELIC" not in system

    # scan depth 1: the new message and the reply before it; the relic was two messages ago
    r = await alice.request("POST", path, json={"content": "And then?"})
    assert r.json()["lore"] == []

    r = await alice.request("POST", path, json={"content": "The relic again."})
    assert r.json()["lore"] == [shrine_id]
    await attach(alice, f"/api/characters/{mira['id']}/lorebooks")
    r = await alice.request("POST", path, json={"content": "The relic, once more."})
    assert r.json()["lore"] == []


async def test_group_turn_lore_is_the_union_over_its_speakers(live: Live, fake: Any) -> None:
    alice = await live.register()
    mira = await alice.character("Mira", identity={"occupation": "healer"})
    bram = await alice.character("Bram", identity={"occupation": "smith"})
    cole = await alice.character("Cole", identity={"occupation": "bard"})
    mira_book = await lorebook(alice, {"keys": ["storm"], "content": "LORE-MIRA storm"})
    bram_book = await lorebook(alice, {"keys": ["storm"], "content": "LORE-BRAM storm"})
    cole_book = await lorebook(alice, {"keys": ["storm"], "content": "LORE-COLE storm"})
    shared = await lorebook(
        alice,
        {"keys": ["storm"], "content": "LORE-GROUP storm", "insertion_order": 0},
        {"keys": ["harbour"], "content": "LORE-HARBOUR"},
    )
    for character, book in ((mira, mira_book), (bram, bram_book), (cole, cole_book)):
        await attach(alice, f"/api/characters/{character['id']}/lorebooks", book)
    group = await alice.group("Inn", [mira, bram, cole], strategy="round_robin", max_speakers=2)
    await attach(alice, f"/api/groups/{group['id']}/lorebooks", shared)

    since = len(fake.requests)
    async with alice.stream(
        f"/api/groups/{group['id']}/messages", {"content": "A storm is coming!"}
    ) as sse:
        events = await sse.collect()
    names = [name for name, _ in events]
    assert names.index("speakers") < names.index("lore") < names.index("delta")
    speakers = dict(events)["speakers"]["character_ids"]
    assert speakers == [mira["id"], bram["id"]]
    group_storm = shared["entries"][0]["id"]
    assert dict(events)["lore"] == {
        "entry_ids": [mira_book["entries"][0]["id"], group_storm, bram_book["entries"][0]["id"]]
    }
    mira_prompt = next(s for s in system_prompts(fake, since) if "You are Mira." in s)
    bram_prompt = next(s for s in system_prompts(fake, since) if "You are Bram." in s)
    # the character's books before the group's
    assert mira_prompt.index("LORE-MIRA") < mira_prompt.index("LORE-GROUP")
    assert "LORE-BRAM" not in mira_prompt and "LORE-MIRA" not in bram_prompt
    assert all("LORE-COLE" not in s and "LORE-HARBOUR" not in s for s in system_prompts(fake, 0))

    r = await alice.request(
        "POST", f"/api/groups/{group['id']}/messages", json={"content": "Quiet now."}
    )
    assert r.status_code == 200
    # Cole speaks now; "storm" is still within scan depth
    assert r.json()["speakers"] == [cole["id"], mira["id"]]
    assert r.json()["lore"] == [
        cole_book["entries"][0]["id"],
        group_storm,
        mira_book["entries"][0]["id"],
    ]
