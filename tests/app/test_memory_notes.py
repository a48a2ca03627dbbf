"""Memories users can see and shape, through the HTTP API: list, search, write, correct, pin,
delete; pinned memories in every prompt; the best-ranked ones in the budget; a user's memory
surviving compression."""

from __future__ import annotations

from typing import Any

import trio

from tests.app.harness import Live, Session
from tests.app.test_memory import chat, server

ARMOR = "用户送给我一副闪亮的盔甲，我答应永远穿着它"


async def idle(live: Live) -> None:
    with trio.fail_after(30):
        await live.services.memory.wait_idle()


async def listed(s: Session, conv: str, **params: Any) -> list[dict[str, Any]]:
    r = await s.request("GET", f"{conv}/memories", params=params)
    assert r.status_code == 200, r.text
    return r.json()["items"]  # type: ignore[no-any-return]


async def write(s: Session, conv: str, content: str, **fields: Any) -> dict[str, Any]:
    r = await s.request("POST", f"{conv}/memories", json={"content": content, **fields})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def prompts(fake: Any, since: int = 0) -> list[str]:
    """The system prompts of the character replies the upstream received."""
    return [
        r.messages[0]["content"]
        for r in fake.requests[since:]
        if r.messages[0]["content"].startswith("You are ")
    ]


async def test_crud_validation_and_other_users_ids(live: Live) -> None:
    alice = await live.register()
    bob = await live.register("bob")
    mira = await alice.character("Mira")
    conv = f"/api/characters/{mira['id']}/chat"
    assert await listed(alice, conv) == []

    first = await write(alice, conv, "The user's name is Ada.")
    assert first["origin"] == "user" and first["kind"] == "long_term"
    assert first["importance"] == 3 and first["pinned"] is False and first["edited_at"] is None
    second = await write(alice, conv, "The user hates rain.", importance=5, pinned=True)
    assert second["importance"] == 5 and second["pinned"] is True
    assert [m["id"] for m in await listed(alice, conv)] == [second["id"], first["id"]]
    assert [m["id"] for m in await listed(alice, conv, limit=1)] == [second["id"]]

    for bad in (
        {},
        {"content": ""},
        {"content": "x" * 2001},
        {"content": "x", "importance": 0},
        {"content": "x", "importance": 6},
        {"content": "x", "importance": "3"},
        {"content": "x", "importance": True},
        {"content": "x", "pinned": "yes"},
        {"content": "x", "character_id": mira["id"]},  # only a group's memories name one
        {"content": "x", "surprise": 1},
    ):
        r = await alice.request("POST", f"{conv}/memories", json=bad)
        assert r.status_code == 400, bad
        assert r.json()["error"]["code"] == "invalid_request"
    for params in ({"limit": 0}, {"limit": 1001}, {"limit": "many"}):
        r = await alice.request("GET", f"{conv}/memories", params=params)
        assert r.status_code == 400, params

    path = f"{conv}/memories/{first['id']}"
    r = await alice.request("PATCH", path, json={"content": "The user's name is Ada Lovelace."})
    assert r.status_code == 200, r.text
    edited = r.json()
    assert edited["id"] == first["id"] and edited["content"] == "The user's name is Ada Lovelace."
    assert edited["edited_at"] is not None and edited["origin"] == "user"
    r = await alice.request("PATCH", path, json={"importance": 4, "pinned": True})
    assert r.json()["importance"] == 4 and r.json()["pinned"] is True
    assert r.json()["content"] == "The user's name is Ada Lovelace."
    for bad in ({"content": ""}, {"importance": 9}, {"pinned": 1}, {"kind": "long_term"}):
        r = await alice.request("PATCH", path, json=bad)
        assert r.status_code == 400, bad

    # another user's memory, another conversation's, a non-canonical id: 404
    bobs = await bob.character("Mira")
    other = await alice.character("Other")
    elsewhere = [
        (bob, f"/api/characters/{mira['id']}/chat/memories/{first['id']}"),
        (bob, f"/api/characters/{bobs['id']}/chat/memories/{first['id']}"),
        (alice, f"/api/characters/{other['id']}/chat/memories/{first['id']}"),
        (alice, f"{conv}/memories/0{first['id']}"),
        (alice, f"{conv}/memories/999999"),
    ]
    for session, target in elsewhere:
        for method, body in (("PATCH", {"pinned": False}), ("DELETE", None)):
            r = await session.request(method, target, json=body)
            assert r.status_code == 404, (method, target)
            assert r.json()["error"]["code"] == "not_found"
    r = await bob.request("GET", f"{conv}/memories")
    assert r.status_code == 404
    r = await bob.request("POST", f"{conv}/memories", json={"content": "mine now"})
    assert r.status_code == 404
    assert await listed(bob, f"/api/characters/{bobs['id']}/chat") == []

    r = await alice.request("DELETE", path)
    assert r.status_code == 204 and r.content == b""
    assert [m["id"] for m in await listed(alice, conv)] == [second["id"]]
    r = await alice.request("DELETE", path)
    assert r.status_code == 404


async def test_group_memories_belong_to_a_member(live: Live) -> None:
    alice = await live.register()
    mira, tom, outsider = [await alice.character(n) for n in ("Mira", "Tom", "Zed")]
    r = await alice.request(
        "POST", "/api/groups", json={"name": "Inn", "character_ids": [mira["id"], tom["id"]]}
    )
    assert r.status_code == 201, r.text
    conv = f"/api/groups/{r.json()['id']}"
    for bad in ({"content": "x"}, {"content": "x", "character_id": outsider["id"]}):
        r = await alice.request("POST", f"{conv}/memories", json=bad)
        assert r.status_code == 400, bad
    miras = await write(alice, conv, "Tom owes me a coin.", character_id=mira["id"])
    toms = await write(alice, conv, "Mira is my sister.", character_id=tom["id"], pinned=True)
    assert miras["character_id"] == mira["id"] and toms["character_id"] == tom["id"]
    assert {m["id"] for m in await listed(alice, conv)} == {miras["id"], toms["id"]}
    assert [m["id"] for m in await listed(alice, conv, character_id=tom["id"])] == [toms["id"]]
    r = await alice.request("GET", f"{conv}/memories", params={"character_id": outsider["id"]})
    assert r.status_code == 400
    r = await alice.request("PATCH", f"{conv}/memories/{miras['id']}", json={"content": "Paid."})
    assert r.status_code == 200 and r.json()["content"] == "Paid." and r.json()["edited_at"]
    # a group's memory is not the one-to-one chat's
    r = await alice.request("DELETE", f"/api/characters/{mira['id']}/chat/memories/{miras['id']}")
    assert r.status_code == 404
    r = await alice.request("DELETE", f"{conv}/memories/{miras['id']}")
    assert r.status_code == 204
    assert [m["id"] for m in await listed(alice, conv)] == [toms["id"]]


async def test_armor_ranks_first_among_200_and_reaches_the_prompt(db_url: str, fake: Any) -> None:
    async with server(db_url, fake, prompt_token_budget=600, memory_trigger_messages=40) as live:
        alice = await live.register()
        mira = await alice.character("Mira")
        conv = f"/api/characters/{mira['id']}/chat"
        armor = await write(alice, conv, ARMOR, importance=1)  # oldest and least important
        english = await write(alice, conv, "The user's knight wears heavy plate armor.")
        others = [
            "我们在甲板上看日落，第{}天",  # 甲 alone, never 盔甲
            "用户戴着头盔去了市场，第{}天",  # 盔 alone
            "今天下雨了，我们聊了天气，第{}天",
            "We talked about apples at the market on day {}.",
        ]
        for i in range(200):
            await write(alice, conv, others[i % len(others)].format(i), importance=5)
        ranked = await listed(alice, conv, q="你还记得那副盔甲吗？")
        assert len(ranked) == 202
        assert ranked[0]["id"] == armor["id"]
        assert (await listed(alice, conv, q="ARMOR"))[0]["id"] == english["id"]
        assert (await listed(alice, conv, q="盔甲", limit=1))[0]["id"] == armor["id"]
        assert (await listed(alice, conv))[0]["content"].endswith("199.")  # newest first

        since = len(fake.requests)
        await chat(alice, mira["id"], "你还记得我送你的盔甲吗？")
        (system,) = prompts(fake, since)
        assert ARMOR in system
        carried = sum(o.format(i) in system for i in range(200) for o in others)
        assert 0 < carried < 200  # the budget keeps the best-ranked ones only


async def test_pinned_memory_is_in_every_prompt(db_url: str, fake: Any) -> None:
    async with server(db_url, fake, prompt_token_budget=400) as live:
        alice = await live.register()
        mira, tom = await alice.character("Mira"), await alice.character("Tom")
        conv = f"/api/characters/{mira['id']}/chat"
        for i in range(60):
            await write(alice, conv, f"The user mentioned the weather report number {i}.")
        pinned = await write(alice, conv, "The user is allergic to cats.", importance=1)
        r = await alice.request("PATCH", f"{conv}/memories/{pinned['id']}", json={"pinned": True})
        assert r.status_code == 200
        since = len(fake.requests)
        for text in ("tell me about the weather report", "a long day", "what about dogs?"):
            await chat(alice, mira["id"], text)
        await idle(live)  # compression ran (6 messages > trigger 4): the pinned one stays
        await chat(alice, mira["id"], "weather weather weather report")
        r = await alice.request("POST", f"{conv}/regenerate")
        assert r.status_code == 200, r.text
        sent = prompts(fake, since)
        assert len(sent) == 5
        assert all("The user is allergic to cats." in s for s in sent)
        assert not any("weather report number 0." in s for s in sent)  # the rest is ranked

        group = await alice.group("Inn", [mira, tom])
        await write(
            alice,
            f"/api/groups/{group['id']}",
            "Tom keeps the inn's keys.",
            character_id=tom["id"],
            pinned=True,
        )
        since = len(fake.requests)
        r = await alice.request(
            "POST", f"/api/groups/{group['id']}/messages", json={"content": "hello both"}
        )
        assert r.status_code == 200, r.text
        by_speaker = {s.split(".")[0]: s for s in prompts(fake, since)}
        assert "Tom keeps the inn's keys." in by_speaker["You are Tom"]
        assert "Tom keeps the inn's keys." not in by_speaker["You are Mira"]


async def test_edited_and_written_memories_survive_compression(db_url: str, fake: Any) -> None:
    async with server(db_url, fake, memory_short_term_budget=1) as live:
        alice = await live.register()
        mira = await alice.character("Mira")
        conv = f"/api/characters/{mira['id']}/chat"
        for i in range(3):
            await chat(alice, mira["id"], f"first part {i}")
        await idle(live)
        compressed = await listed(alice, conv)
        assert compressed and all(m["origin"] == "compressed" for m in compressed)
        assert all(1 <= m["importance"] <= 5 for m in compressed)
        target = compressed[0]
        r = await alice.request(
            "PATCH", f"{conv}/memories/{target['id']}", json={"content": "Mira owes Ada a sword."}
        )
        assert r.status_code == 200
        written = await write(alice, conv, "Ada was born in a lighthouse.")

        merges_before = len([r for r in fake.requests if "MEMORY MERGE" in str(r.messages)])
        for i in range(4):
            await chat(alice, mira["id"], f"second part {i}")
        await idle(live)
        merges = [r for r in fake.requests if "MEMORY MERGE" in str(r.messages)]
        assert len(merges) > merges_before  # the next compression merged again
        after = {m["id"]: m for m in await listed(alice, conv)}
        assert after[target["id"]]["content"] == "Mira owes Ada a sword."
        assert after[written["id"]]["content"] == "Ada was born in a lighthouse."
        for request in merges:
            text = request.messages[-1]["content"]
            assert "Mira owes Ada a sword." not in text and "lighthouse" not in text
