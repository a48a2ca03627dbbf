"""Group chat over real HTTP: CRUD and validation, concurrent speakers, speaker choice,
points of view, failures, stop, per-character memories."""

from __future__ import annotations

from typing import Any

import trio

from app.services.groups import SpeakerChoice, named_in, validate_choice
from app.services.speakers import round_robin
from llm.fake import Fault
from tests.app.harness import Live, Session, live_server, make_settings


async def make_group(s: Session, members: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    body = {"name": "Tavern", "character_ids": [m["id"] for m in members], **fields}
    r = await s.request("POST", "/api/groups", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def cast(s: Session, *names: str) -> list[dict[str, Any]]:
    return [
        await s.character(name, identity={"occupation": f"{name.lower()}'s trade"})
        for name in names
    ]


async def send(s: Session, group: dict[str, Any], content: str) -> dict[str, Any]:
    r = await s.request("POST", f"/api/groups/{group['id']}/messages", json={"content": content})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def speaker_requests(fake: Any, since: int) -> list[Any]:
    """The fake's recorded requests after `since` that were character replies."""
    return [
        r
        for r in fake.requests[since:]
        if r.messages and r.messages[0]["content"].startswith("You are ")
    ]


def reply_request(fake: Any, since: int, name: str) -> Any:
    found = [
        r
        for r in speaker_requests(fake, since)
        if r.messages[0]["content"].startswith(f"You are {name}.")
    ]
    assert len(found) == 1
    return found[0]


# ---- CRUD and validation


async def test_group_crud(live: Live) -> None:
    alice = await live.register()
    mira, bram, cole = await cast(alice, "Mira", "Bram", "Cole")
    group = await make_group(alice, [mira, bram])
    assert group["strategy"] == "moderator" and group["max_speakers"] == 2
    assert group["character_ids"] == [mira["id"], bram["id"]]
    r = await alice.request("GET", "/api/groups")
    assert [g["id"] for g in r.json()["items"]] == [group["id"]]
    r = await alice.request("GET", f"/api/groups/{group['id']}")
    assert r.json() == group
    r = await alice.request(
        "PATCH",
        f"/api/groups/{group['id']}",
        json={
            "name": "Inn",
            "character_ids": [cole["id"], mira["id"], bram["id"]],
            "strategy": "round_robin",
            "max_speakers": 3,
        },
    )
    assert r.status_code == 200, r.text
    patched = r.json()
    assert patched["name"] == "Inn" and patched["strategy"] == "round_robin"
    assert patched["character_ids"] == [cole["id"], mira["id"], bram["id"]]
    assert patched["max_speakers"] == 3
    # fewer members than max_speakers
    r = await alice.request(
        "PATCH", f"/api/groups/{group['id']}", json={"character_ids": [cole["id"], mira["id"]]}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    r = await alice.request("DELETE", f"/api/groups/{group['id']}")
    assert r.status_code == 204
    r = await alice.request("GET", f"/api/groups/{group['id']}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_group_validation(live: Live) -> None:
    alice = await live.register()
    bob = await live.register("bob")
    mira, bram = await cast(alice, "Mira", "Bram")
    (bobs,) = await cast(bob, "Zed")
    bad_bodies = [
        {"character_ids": [mira["id"], bobs["id"]]},  # another user's character
        {"character_ids": [mira["id"], "999999"]},  # unknown
        {"character_ids": [mira["id"], "abc"]},  # not an id
        {"character_ids": [mira["id"], mira["id"]]},  # repeated
        {"character_ids": [mira["id"]]},  # too few
        {"character_ids": [mira["id"], bram["id"]], "max_speakers": 3},
        {"character_ids": [mira["id"], bram["id"]], "max_speakers": 0},
        {"character_ids": [mira["id"], bram["id"]], "strategy": "loudest"},
    ]
    for body in bad_bodies:
        r = await alice.request("POST", "/api/groups", json={"name": "G", **body})
        assert r.status_code == 400, body
        assert r.json()["error"]["code"] == "invalid_request"
    r = await alice.request("POST", "/api/groups", json={"name": "G", "character_ids": ["1"] * 9})
    assert r.status_code == 400
    # another user's group is invisible
    group = await make_group(alice, [mira, bram])
    for method, path, body in [
        ("GET", "", None),
        ("PATCH", "", {"name": "x"}),
        ("DELETE", "", None),
        ("POST", "/messages", {"content": "hi"}),
        ("GET", "/messages", None),
        ("GET", "/memories", None),
        ("POST", "/stop", None),
    ]:
        r = await bob.request(method, f"/api/groups/{group['id']}{path}", json=body)
        assert r.status_code == 404, (method, path)
    r = await alice.request("GET", "/api/groups/nope")
    assert r.status_code == 404
    r = await alice.request("POST", f"/api/groups/{group['id']}/messages", json={"content": ""})
    assert r.status_code == 400


# ---- turns


async def test_all_reply_concurrently_in_one_stream(live: Live, fake: Any) -> None:
    alice = await live.register()
    members = await cast(alice, "Mira", "Bram", "Cole")
    group = await make_group(alice, members, strategy="all")
    since = len(fake.requests)
    path = f"/api/groups/{group['id']}/messages"
    async with alice.stream(path, {"content": "Evening all [[fake:ttft=0.2]]"}) as sse:
        events = await sse.collect()
    names = [n for n, _ in events]
    assert names[:2] == ["user_message", "speakers"] and names[-1] == "done"
    assert names.count("reply") == 3
    ids = [m["id"] for m in members]
    assert events[1][1]["character_ids"] == ids
    replies = {d["character_id"]: d for n, d in events if n == "reply"}
    assert set(replies) == set(ids)
    for cid in ids:
        text = "".join(d["text"] for n, d in events if n == "delta" and d["character_id"] == cid)
        assert text and text == replies[cid]["content"]
        assert replies[cid]["status"] == "complete" and replies[cid]["role"] == "assistant"
    # the three upstream requests were in flight at the same time
    requests = speaker_requests(fake, since)
    assert len(requests) == 3
    assert max(r.started_at for r in requests) < min(r.ended_at for r in requests)
    # each reached the model with the user's message verbatim as the last message
    assert all(
        r.messages[-1] == {"role": "user", "content": "Evening all [[fake:ttft=0.2]]"}
        for r in requests
    )
    r = await alice.request("GET", f"/api/groups/{group['id']}/messages")
    items = r.json()["items"]
    assert items[0]["id"] == events[0][1]["id"] and len(items) == 4


async def test_json_turn_and_points_of_view(live: Live, fake: Any) -> None:
    alice = await live.register()
    mira, bram = await cast(alice, "Mira", "Bram")
    group = await make_group(alice, [mira, bram], strategy="all")
    first = await send(alice, group, "Who are you?")
    assert first["speakers"] == [mira["id"], bram["id"]] and first["reason"]
    assert first["user_message"]["content"] == "Who are you?"
    said = {m["character_id"]: m["content"] for m in first["replies"]}
    assert [m["character_id"] for m in first["replies"]] == [mira["id"], bram["id"]]

    since = len(fake.requests)
    await send(alice, group, "And now?")
    mira_sees = reply_request(fake, since, "Mira").messages[1:]
    assert {"role": "assistant", "content": said[mira["id"]]} in mira_sees
    assert {"role": "user", "content": f"Bram: {said[bram['id']]}"} in mira_sees
    assert mira_sees[0] == {"role": "user", "content": "Who are you?"}
    assert mira_sees[-1] == {"role": "user", "content": "And now?"}
    bram_sees = reply_request(fake, since, "Bram").messages[1:]
    assert {"role": "assistant", "content": said[bram["id"]]} in bram_sees
    assert {"role": "user", "content": f"Mira: {said[mira['id']]}"} in bram_sees
    assert "group conversation" in reply_request(fake, since, "Bram").messages[0]["content"]


async def test_moderator_chooses_from_candidates(live: Live, fake: Any) -> None:
    alice = await live.register()
    members = await cast(alice, "Mira", "Bram", "Cole")
    group = await make_group(alice, members, max_speakers=2)
    since = len(fake.requests)
    turn = await send(alice, group, "What news from the road?")
    ids = [m["id"] for m in members]
    assert 1 <= len(turn["speakers"]) <= 2 and set(turn["speakers"]) <= set(ids)
    assert turn["reason"] and turn["reason"] not in ("round robin", "named in the message")
    assert [m["character_id"] for m in turn["replies"]] == turn["speakers"]
    moderator = [r for r in fake.requests[since:] if "CANDIDATES:" in r.messages[-1]["content"]]
    assert len(moderator) == 1
    prompt = moderator[0].messages[-1]["content"]
    assert f"CANDIDATES: {','.join(ids)}" in prompt
    assert "What news from the road?" in prompt and "cole's trade" in prompt
    # the moderator call came before every reply
    assert all(moderator[0].ended_at <= r.started_at for r in speaker_requests(fake, since))


async def test_moderator_failure_falls_back_to_named_members(live: Live, fake: Any) -> None:
    alice = await live.register()
    mira, bram, cole = await cast(alice, "Mira", "Bram", "Cole")
    group = await make_group(alice, [mira, bram, cole], max_speakers=2)
    fake.faults.append(Fault.http(400, match="CANDIDATES:"))
    turn = await send(alice, group, "cole, and you BRAM: thoughts? (not Bramble)")
    assert turn["speakers"] == [bram["id"], cole["id"]]
    assert turn["reason"] == "named in the message"
    assert len(fake.faults) == 0


async def test_moderator_nonsense_falls_back_to_round_robin(live: Live, fake: Any) -> None:
    alice = await live.register()
    mira, bram, cole = await cast(alice, "Mira", "Bram", "Cole")
    group = await make_group(alice, [mira, bram, cole], max_speakers=2)
    # invalid JSON twice: the moderator's call and its retry (with the error fed back) are the
    # turn's first two upstream requests
    fake.faults.extend([Fault("invalid_json"), Fault("invalid_json")])
    turn = await send(alice, group, "Anyone?")
    assert turn["speakers"] == [mira["id"], bram["id"]] and turn["reason"] == "round robin"
    assert len(fake.faults) == 0


async def test_round_robin_order(live: Live) -> None:
    alice = await live.register()
    mira, bram, cole = await cast(alice, "Mira", "Bram", "Cole")
    group = await make_group(alice, [mira, bram, cole], strategy="round_robin", max_speakers=1)
    order = [(await send(alice, group, f"turn {i}"))["speakers"] for i in range(4)]
    assert order == [[mira["id"]], [bram["id"]], [cole["id"]], [mira["id"]]]
    r = await alice.request("PATCH", f"/api/groups/{group['id']}", json={"max_speakers": 2})
    assert r.status_code == 200
    turn = await send(alice, group, "two now")
    assert turn["speakers"] == [bram["id"], cole["id"]]


def test_speaker_choice_helpers() -> None:
    # (members, previous turn's speakers in the order their replies were stored, count) -> next
    table = [
        ([1, 2, 3], [], 2, [1, 2]),
        ([1, 2, 3], [3], 2, [1, 2]),
        ([1, 2, 3], [2], 5, [3, 1, 2]),
        ([1, 2, 3], [99], 1, [1]),
        # the last member in listed order, not whichever reply finished last
        ([1, 2, 3, 4], [2, 1], 2, [3, 4]),
        ([1, 2, 3, 4], [1, 2], 2, [3, 4]),
        ([1, 2, 3, 4], [4, 1], 1, [1]),
    ]
    for members, previous, count, expected in table:
        assert round_robin(members, previous, count) == expected, (members, previous, count)
    assert validate_choice(SpeakerChoice(character_ids=["2", "1"], reason=""), [1, 2, 3], 2) == [
        2,
        1,
    ]
    assert validate_choice(SpeakerChoice(character_ids=["2", "2"], reason=""), [1, 2], 2) == [2]
    for bad in (["4"], ["1", "2", "3"], [], ["x"]):
        assert validate_choice(SpeakerChoice(character_ids=bad, reason=""), [1, 2, 3], 2) == []


async def test_named_in_matches_whole_names_in_any_case(live: Live) -> None:
    alice = await live.register()
    chars = live.services.characters
    a = await chars.create(int(alice.user["id"]), "Old Brannoc", None)
    b = await chars.create(int(alice.user["id"]), "Mira", None)
    assert named_in("hey old brannoc and MIRA", [a, b], 2) == [a.id, b.id]
    assert named_in("Miranda?", [a, b], 2) == []
    assert named_in("mira, brannoc", [a, b], 1) == [b.id]


async def test_one_speaker_failing_does_not_stop_the_others(live: Live, fake: Any) -> None:
    alice = await live.register()
    mira, bram = await cast(alice, "Mira", "Bram")
    group = await make_group(alice, [mira, bram], strategy="all")
    # the first reply request breaks after two chunks (too late to retry)
    fake.faults.append(Fault("mid_stream_error", after_chunks=2))
    async with alice.stream(f"/api/groups/{group['id']}/messages", {"content": "Go"}) as sse:
        events = await sse.collect()
    assert events[-1][0] == "done"
    replies = [d for n, d in events if n == "reply"]
    assert sorted(r["status"] for r in replies) == ["complete", "error"]
    failed = next(r for r in replies if r["status"] == "error")
    assert failed["content"]
    errors = [d for n, d in events if n == "speaker_error"]
    assert [e["character_id"] for e in errors] == [failed["character_id"]]
    assert errors[0]["code"] == "llm_error"


async def test_every_speaker_failing_is_an_error(live: Live) -> None:
    alice = await live.register()
    mira, bram = await cast(alice, "Mira", "Bram")
    group = await make_group(alice, [mira, bram], strategy="all")
    path = f"/api/groups/{group['id']}/messages"
    async with alice.stream(path, {"content": "x [[fake:fault=mid_stream_error:after=1]]"}) as sse:
        events = await sse.collect()
    assert events[-1][0] == "error" and events[-1][1]["code"] == "llm_error"
    r = await alice.request("POST", path, json={"content": "y [[fake:fault=http_401]]"})
    assert r.status_code == 502 and r.json()["error"]["code"] == "llm_error"
    r = await alice.request("GET", f"/api/groups/{group['id']}/messages")
    assert [m["role"] for m in r.json()["items"]][-1] == "user"  # no text, nothing stored


async def test_busy_group_conflicts_and_stop_interrupts_every_speaker(live: Live) -> None:
    alice = await live.register()
    mira, bram = await cast(alice, "Mira", "Bram")
    group = await make_group(alice, [mira, bram], strategy="all")
    path = f"/api/groups/{group['id']}/messages"
    body = {"content": "long [[fake:tokens=400]] [[fake:tps=40]]"}
    events: list[tuple[str, dict[str, Any]]] = []
    async with alice.stream(path, body) as sse:
        seen: set[str] = set()
        async for _, name, data in sse:
            events.append((name, data))
            if name == "delta":
                seen.add(data["character_id"])
            if len(seen) == 2:
                break
        r = await alice.request("POST", path, json={"content": "me too"})
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "generation_in_progress"
        r = await alice.request("POST", f"/api/groups/{group['id']}/stop")
        assert r.json() == {"stopped": True}
        async for _, name, data in sse:
            events.append((name, data))
    assert events[-1][0] == "done"
    replies = [d for n, d in events if n == "reply"]
    assert len(replies) == 2 and {r["status"] for r in replies} == {"interrupted"}
    assert all(r["content"] for r in replies)
    r = await alice.request("POST", f"/api/groups/{group['id']}/stop")
    assert r.json() == {"stopped": False}
    r = await alice.request("GET", f"/api/groups/{group['id']}/messages")
    assert all(m["content"] != "me too" for m in r.json()["items"])


async def test_per_character_group_memories(db_url: str, fake: Any) -> None:
    rounds = 2
    settings = make_settings(db_url, fake.base_url, memory_trigger_messages=4, memory_keep_recent=2)
    async with live_server(settings) as live:
        alice = await live.register()
        mira, bram = await cast(alice, "Mira", "Bram")
        group = await make_group(alice, [mira, bram], strategy="all")
        for i in range(rounds):
            await send(alice, group, f"round {i}")
        with trio.fail_after(20):
            await live.services.memory.wait_idle()
        base = f"/api/groups/{group['id']}"
        everything = (await alice.request("GET", f"{base}/memories")).json()["items"]
        owners = {m["character_id"] for m in everything}
        assert owners == {mira["id"], bram["id"]}
        assert all(m["kind"] == "short_term" and m["content"] for m in everything)
        r = await alice.request("GET", f"{base}/memories", params={"character_id": mira["id"]})
        mine = r.json()["items"]
        assert mine and {m["character_id"] for m in mine} == {mira["id"]}
        summaries = [
            r for r in fake.requests if r.messages[-1]["content"].startswith("MEMORY SUMMARY")
        ]
        assert sorted(r.messages[-1]["content"].split("\n")[0] for r in summaries) == [
            "MEMORY SUMMARY for Bram",
            "MEMORY SUMMARY for Mira",
        ]
        # the oldest messages are compressed, the newest two are not, all are still listed
        items = (await alice.request("GET", f"{base}/messages")).json()["items"]
        assert len(items) == 3 * rounds
        assert [m["compressed"] for m in items] == [True] * (len(items) - 2) + [False] * 2
        # the next turn: each character's prompt holds its own memories only
        since = len(fake.requests)
        await send(alice, group, "remember?")
        mira_system = reply_request(fake, since, "Mira").messages[0]["content"]
        assert all(m["content"] in mira_system for m in mine)
        bram_only = [m for m in everything if m["character_id"] == bram["id"]]
        assert not any(m["content"] in mira_system for m in bram_only)
        r = await alice.request("GET", f"{base}/memories", params={"character_id": "x"})
        assert r.status_code == 400
