"""Steering a group over real HTTP: muted members, talkativeness, self responses, the natural,
pooled and manual strategies, `speaker_ids`, turns without the user, and `continue` (one
generation of rounds: stop, 409, disconnect, shutdown)."""

from __future__ import annotations

from typing import Any

import trio

from tests.app.harness import Live, Session, live_server, make_settings
from tests.app.test_groups import cast, make_group, reply_request, speaker_requests
from tests.app.test_speakers import Scripted


async def turn(s: Session, group: dict[str, Any], **body: Any) -> dict[str, Any]:
    r = await s.request("POST", f"/api/groups/{group['id']}/messages", json=body)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def continue_(s: Session, group: dict[str, Any], rounds: int) -> list[dict[str, Any]]:
    r = await s.request("POST", f"/api/groups/{group['id']}/continue", json={"rounds": rounds})
    assert r.status_code == 200, r.text
    return r.json()["rounds"]  # type: ignore[no-any-return]


async def patch(s: Session, group: dict[str, Any], **body: Any) -> dict[str, Any]:
    r = await s.request("PATCH", f"/api/groups/{group['id']}", json=body)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def history(s: Session, group: dict[str, Any]) -> list[dict[str, Any]]:
    r = await s.request("GET", f"/api/groups/{group['id']}/messages", params={"limit": 200})
    return r.json()["items"]  # type: ignore[no-any-return]


def moderator_requests(fake: Any, since: int) -> list[Any]:
    return [r for r in fake.requests[since:] if "CANDIDATES:" in r.messages[-1]["content"]]


def ints(*ids: str) -> list[int]:
    return [int(i) for i in ids]


def script(live: Live, **fields: Any) -> Scripted:
    rng = Scripted(**fields)
    live.services.groups.random = rng
    return rng


# ---- fields and validation


async def test_steering_fields_defaults_patch_merge_and_validation(live: Live) -> None:
    alice = await live.register()
    mira, bram, cole = await cast(alice, "Mira", "Bram", "Cole")
    ids = [mira["id"], bram["id"], cole["id"]]
    group = await make_group(alice, [mira, bram, cole], strategy="natural")
    assert group["strategy"] == "natural"
    assert group["muted_character_ids"] == [] and group["allow_self_responses"] is False
    assert group["talkativeness"] == dict.fromkeys(ids, 0.5)

    g = await patch(alice, group, talkativeness={mira["id"]: 0.2})
    g = await patch(alice, group, talkativeness={bram["id"]: 1}, muted_character_ids=[cole["id"]])
    assert g["talkativeness"] == {mira["id"]: 0.2, bram["id"]: 1.0, cole["id"]: 0.5}
    assert g["muted_character_ids"] == [cole["id"]]
    g = await patch(alice, group, allow_self_responses=True, strategy="pooled")
    assert g["allow_self_responses"] is True and g["strategy"] == "pooled"
    assert g["muted_character_ids"] == [cole["id"]] and g["talkativeness"][mira["id"]] == 0.2
    r = await alice.request("GET", f"/api/groups/{group['id']}")
    assert r.json() == g
    # a member who leaves loses mute and talkativeness; one who comes back has the defaults
    g = await patch(alice, group, character_ids=[mira["id"], bram["id"]])
    assert g["muted_character_ids"] == [] and set(g["talkativeness"]) == {mira["id"], bram["id"]}
    g = await patch(alice, group, character_ids=ids)
    assert g["talkativeness"][cole["id"]] == 0.5 and g["muted_character_ids"] == []
    g = await patch(alice, group, muted_character_ids=[])
    assert g["muted_character_ids"] == []

    created = await make_group(
        alice,
        [mira, bram],
        strategy="manual",
        muted_character_ids=[bram["id"]],
        talkativeness={mira["id"]: 0},
        allow_self_responses=True,
    )
    assert created["muted_character_ids"] == [bram["id"]] and created["allow_self_responses"]
    assert created["talkativeness"] == {mira["id"]: 0.0, bram["id"]: 0.5}

    outsider = (await cast(alice, "Zed"))[0]["id"]
    bad = [
        {"muted_character_ids": [outsider]},
        {"muted_character_ids": ["abc"]},
        {"muted_character_ids": [mira["id"], mira["id"]]},
        {"talkativeness": {outsider: 0.5}},
        {"talkativeness": {mira["id"]: 1.5}},
        {"talkativeness": {mira["id"]: -0.1}},
        {"talkativeness": {mira["id"]: "0.5"}},
        {"talkativeness": {mira["id"]: True}},
        {"talkativeness": [0.5]},
        {"allow_self_responses": 1},
        {"allow_self_responses": "true"},
        {"strategy": "list"},
    ]
    for body in bad:
        r = await alice.request("PATCH", f"/api/groups/{group['id']}", json=body)
        assert r.status_code == 400, body
        assert r.json()["error"]["code"] == "invalid_request"
        r = await alice.request(
            "POST", "/api/groups", json={"name": "G", "character_ids": ids, **body}
        )
        assert r.status_code == 400, body
    # muting someone who is leaving in the same PATCH: the new member list counts
    r = await alice.request(
        "PATCH",
        f"/api/groups/{group['id']}",
        json={"character_ids": [mira["id"], bram["id"]], "muted_character_ids": [cole["id"]]},
    )
    assert r.status_code == 400

    messages = f"/api/groups/{group['id']}/messages"
    for body in [
        {"speaker_ids": [outsider]},
        {"speaker_ids": [mira["id"], mira["id"]]},
        {"speaker_ids": []},
        {"speaker_ids": mira["id"]},
        {"content": ""},
        {"content": "hi", "extra": 1},
    ]:
        r = await alice.request("POST", messages, json=body)
        assert r.status_code == 400, body
    cont = f"/api/groups/{group['id']}/continue"
    for body in [{"rounds": 0}, {"rounds": 11}, {"rounds": "2"}, {"rounds": 1.5}, {"rounds": True}]:
        r = await alice.request("POST", cont, json=body)
        assert r.status_code == 400, body
    bob = await live.register("bob")
    r = await bob.request("POST", cont, json={"rounds": 1})
    assert r.status_code == 404
    assert await history(alice, group) == []  # nothing was stored by the refused turns


# ---- speaker_ids, mutes, turns without the user, manual


async def test_speaker_ids_replace_the_strategy_and_may_name_muted_members(
    live: Live, fake: Any
) -> None:
    alice = await live.register()
    mira, bram, cole = await cast(alice, "Mira", "Bram", "Cole")
    group = await make_group(
        alice, [mira, bram, cole], strategy="all", muted_character_ids=[cole["id"]]
    )
    first = await turn(alice, group, content="Evening")
    assert first["speakers"] == [mira["id"], bram["id"]]  # the muted member is left out
    group = await patch(alice, group, strategy="round_robin", max_speakers=1)
    since = len(fake.requests)
    forced = await turn(alice, group, content="You two?", speaker_ids=[cole["id"], mira["id"]])
    # in the order given, muted too, not capped by max_speakers, replying concurrently
    assert forced["speakers"] == [cole["id"], mira["id"]]
    assert [m["character_id"] for m in forced["replies"]] == [cole["id"], mira["id"]]
    assert forced["reason"] == "chosen by the user"
    requests = speaker_requests(fake, since)
    assert len(requests) == 2 and not moderator_requests(fake, since)
    assert max(r.started_at for r in requests) < min(r.ended_at for r in requests)
    # the muted member keeps its history: it sees the whole conversation
    cole_sees = reply_request(fake, since, "Cole").messages
    assert cole_sees[1] == {"role": "user", "content": "Evening"}
    assert cole_sees[-1] == {"role": "user", "content": "You two?"}


async def test_turn_without_content_stores_and_sends_no_user_message(live: Live, fake: Any) -> None:
    alice = await live.register()
    mira, bram = await cast(alice, "Mira", "Bram")
    group = await make_group(alice, [mira, bram], strategy="round_robin", max_speakers=1)
    first = await turn(alice, group, content="Tell me a story")
    assert first["speakers"] == [mira["id"]]
    mira_said = first["replies"][0]["content"]
    since = len(fake.requests)
    path = f"/api/groups/{group['id']}/messages"
    async with alice.stream(path, {}) as sse:
        events = await sse.collect()
    names = [n for n, _ in events]
    assert "user_message" not in names and names[0] == "speakers" and names[-1] == "done"
    assert events[0][1]["character_ids"] == [bram["id"]]
    # Bram answers Mira's line: it is the last message of his prompt, no new user message
    bram_sees = reply_request(fake, since, "Bram").messages
    assert bram_sees[-1] == {"role": "user", "content": f"Mira: {mira_said}"}
    assert "says nothing this turn" in bram_sees[0]["content"]
    json_turn = await turn(alice, group)
    assert json_turn["user_message"] is None and json_turn["speakers"] == [mira["id"]]
    items = await history(alice, group)
    assert [m["role"] for m in items] == ["user", "assistant", "assistant", "assistant"]
    assert [m["character_id"] for m in items[1:]] == [mira["id"], bram["id"], mira["id"]]


async def test_manual_group_replies_only_to_speaker_ids(live: Live, fake: Any) -> None:
    alice = await live.register()
    mira, bram = await cast(alice, "Mira", "Bram")
    group = await make_group(alice, [mira, bram], strategy="manual")
    since = len(fake.requests)
    path = f"/api/groups/{group['id']}/messages"
    async with alice.stream(path, {"content": "Just noting this"}) as sse:
        events = await sse.collect()
    assert [n for n, _ in events] == ["user_message", "speakers", "done"]
    assert events[1][1]["character_ids"] == []
    assert len(fake.requests) == since  # no LLM call at all
    quiet = await turn(alice, group, content="Still noting")
    assert quiet["speakers"] == [] and quiet["replies"] == []
    assert quiet["user_message"]["content"] == "Still noting"
    # neither content nor speaker_ids: nothing to do in a manual group
    r = await alice.request("POST", path, json={})
    assert r.status_code == 400 and "speaker_ids" in r.json()["error"]["message"]
    asked = await turn(alice, group, speaker_ids=[bram["id"]])
    assert asked["user_message"] is None and asked["speakers"] == [bram["id"]]
    assert await continue_(alice, group, 3) == []  # every round would choose nobody
    assert [m["role"] for m in await history(alice, group)] == ["user", "user", "assistant"]


# ---- natural and pooled


async def test_natural_mentions_rolls_self_responses_and_mutes(live: Live, fake: Any) -> None:
    alice = await live.register()
    mira, bram, cole = await cast(alice, "Mira", "Bram", "Cole")
    m, b, c = mira["id"], bram["id"], cole["id"]
    group = await make_group(
        alice,
        [mira, bram, cole],
        strategy="natural",
        max_speakers=3,
        talkativeness={m: 0, b: 1, c: 0},
    )
    rng = script(live, rolls=[0.5] * 2)
    # named (any case, substring), then rolls: Bram always, Mira never
    first = await turn(alice, group, content="cOLE, tell us everything")
    assert first["speakers"] == [c, b] and first["reason"] == "natural order"
    assert rng.shuffled == [[int(m), int(b)]] and not rng.rolls
    # a turn without the user: the last speaker (whoever was stored last) may not speak again
    last = (await history(alice, group))[-1]["character_id"]
    rng = script(live, rolls=[0.5] * 2)
    second = await turn(alice, group)
    expected = [b] if last == c else []  # Cole's turn again never; Bram only if not last
    assert second["speakers"] == expected
    # with self responses allowed the last speaker may roll again
    await patch(alice, group, allow_self_responses=True, talkativeness={m: 0, b: 1, c: 0})
    rng = script(live, rolls=[0.5] * 3)
    third = await turn(alice, group)
    assert third["speakers"] == [b]
    # muted: never, not even when named; talkativeness 0 everywhere else: nobody
    await patch(alice, group, muted_character_ids=[b], allow_self_responses=False)
    rng = script(live, rolls=[0.5] * 2)
    fourth = await turn(alice, group, content="Bram?")
    assert fourth["speakers"] == [] and fourth["replies"] == []
    # nobody named or rolled: one random member with talkativeness > 0
    await patch(alice, group, talkativeness={m: 0.3, c: 0.0})
    rng = script(live, rolls=[0.9, 0.9], pick=0)
    fifth = await turn(alice, group, content="Anyone?")
    assert fifth["speakers"] == [m] and rng.offered == [[int(m)]]
    # capped at max_speakers
    await patch(alice, group, muted_character_ids=[], talkativeness={m: 1, b: 1, c: 1})
    await patch(alice, group, max_speakers=2)
    script(live, rolls=[0.1] * 3)
    sixth = await turn(alice, group, content="All of you")
    assert len(sixth["speakers"]) == 2 and len(sixth["replies"]) == 2


async def test_pooled_continue_takes_everyone_once_then_anyone_but_the_last(
    live: Live, fake: Any
) -> None:
    alice = await live.register()
    mira, bram, cole = await cast(alice, "Mira", "Bram", "Cole")
    m, b, c = mira["id"], bram["id"], cole["id"]
    group = await make_group(alice, [mira, bram, cole], strategy="pooled", max_speakers=3)
    rng = script(live, pick=0)
    first = await turn(alice, group, content="Hello")
    assert first["speakers"] == [m] and first["reason"] == "pooled"
    rounds = await continue_(alice, group, 3)
    assert [r["speakers"] for r in rounds] == [[b], [c], [m]]
    assert rng.offered == [ints(m, b, c), ints(b, c), ints(c), ints(m, b)]
    # a new user message opens the pool again; muted members are never in it
    await patch(alice, group, muted_character_ids=[m])
    rng = script(live, pick=0)
    again = await turn(alice, group, content="And now?")
    assert again["speakers"] == [b] and rng.offered == [ints(b, c)]


# ---- moderator


async def test_moderator_respects_mutes_and_self_responses(live: Live, fake: Any) -> None:
    alice = await live.register()
    mira, bram, cole = await cast(alice, "Mira", "Bram", "Cole")
    m, b, c = mira["id"], bram["id"], cole["id"]
    group = await make_group(alice, [mira, bram, cole], max_speakers=2, muted_character_ids=[c])
    since = len(fake.requests)
    first = await turn(alice, group, content="News, Cole?")
    (call,) = moderator_requests(fake, since)
    prompt = call.messages[-1]["content"]
    assert f"CANDIDATES: {m},{b}" in prompt and f"Cole (id {c})" in prompt
    assert f"Muted, never choose: Cole (id {c})" in prompt and "News, Cole?" in prompt
    assert "Just spoke" not in prompt
    assert set(first["speakers"]) <= {m, b} and first["speakers"]
    # without the user: the last speaker is no candidate, unless self responses are allowed
    last = (await history(alice, group))[-1]["character_id"]
    since = len(fake.requests)
    second = await turn(alice, group)
    (call,) = moderator_requests(fake, since)
    prompt = call.messages[-1]["content"]
    other = b if last == m else m
    assert f"CANDIDATES: {other}\n" in prompt + "\n"
    assert "says nothing this turn" in prompt and second["speakers"] == [other]
    assert (
        f"Just spoke, do not choose again: {'Mira' if last == m else 'Bram'} (id {last})" in prompt
    )
    await patch(alice, group, allow_self_responses=True)
    since = len(fake.requests)
    await turn(alice, group)
    (call,) = moderator_requests(fake, since)
    assert f"CANDIDATES: {m},{b}" in call.messages[-1]["content"]
    # every candidate muted: nobody, and no moderator call
    await patch(alice, group, muted_character_ids=[m, b, c])
    since = len(fake.requests)
    assert (await turn(alice, group, content="Hello?"))["speakers"] == []
    assert fake.requests[since:] == []


# ---- continue


async def test_continue_rounds_stream_concurrently_and_see_earlier_rounds(
    live: Live, fake: Any
) -> None:
    alice = await live.register()
    mira, bram = await cast(alice, "Mira", "Bram")
    group = await make_group(alice, [mira, bram], strategy="all")
    await turn(alice, group, content="Talk among yourselves [[fake:ttft=0.1]]")
    since = len(fake.requests)
    async with alice.stream(f"/api/groups/{group['id']}/continue", {"rounds": 3}) as sse:
        events = await sse.collect()
    names = [n for n, _ in events]
    assert "user_message" not in names and names[-1] == "done" and names.count("done") == 1
    starts = [i for i, n in enumerate(names) if n == "round"]
    assert [events[i][1] for i in starts] == [{"index": 0}, {"index": 1}, {"index": 2}]
    assert starts[0] == 0
    said: list[dict[str, str]] = []
    for start, end in zip(starts, [*starts[1:], len(events) - 1], strict=True):
        part = events[start + 1 : end]
        assert part[0] == ("speakers", part[0][1])
        assert part[0][1]["character_ids"] == [mira["id"], bram["id"]]
        replies = {d["character_id"]: d for n, d in part if n == "reply"}
        assert len(replies) == 2 and {r["status"] for r in replies.values()} == {"complete"}
        for cid, reply in replies.items():
            text = [d["text"] for n, d in part if n == "delta" and d["character_id"] == cid]
            assert "".join(text) == reply["content"]
        said.append({cid: r["content"] for cid, r in replies.items()})
    # six reply requests, two at a time, each round after the previous one
    requests = speaker_requests(fake, since)
    assert len(requests) == 6
    rounds = [requests[i : i + 2] for i in range(0, 6, 2)]
    for pair in rounds:
        assert max(r.started_at for r in pair) < min(r.ended_at for r in pair)
    for before, after in zip(rounds, rounds[1:], strict=False):
        assert max(r.ended_at for r in before) <= min(r.started_at for r in after)
    # each round's speakers see the replies of the earlier rounds
    for index, pair in enumerate(rounds[1:], start=1):
        for request in pair:
            mira_speaks = request.messages[0]["content"].startswith("You are Mira.")
            me, other = (mira, bram) if mira_speaks else (bram, mira)
            seen = request.messages[1:]
            for earlier in said[:index]:
                assert {"role": "assistant", "content": earlier[me["id"]]} in seen
                other_line = f"{other['name']}: {earlier[other['id']]}"
                assert {"role": "user", "content": other_line} in seen
    items = await history(alice, group)
    assert len(items) == 1 + 2 + 6 and items[0]["role"] == "user"

    json_rounds = await continue_(alice, group, 2)
    assert len(json_rounds) == 2
    for r in json_rounds:
        assert r["speakers"] == [mira["id"], bram["id"]] and r["reason"]
        assert [m["character_id"] for m in r["replies"]] == r["speakers"]
    assert len(await history(alice, group)) == 13


async def test_continue_round_robin_rotates_between_rounds(live: Live) -> None:
    alice = await live.register()
    mira, bram, cole = await cast(alice, "Mira", "Bram", "Cole")
    group = await make_group(alice, [mira, bram, cole], strategy="round_robin", max_speakers=1)
    rounds = await continue_(alice, group, 4)
    assert [r["speakers"] for r in rounds] == [
        [mira["id"]],
        [bram["id"]],
        [cole["id"]],
        [mira["id"]],
    ]


async def test_continue_stops_when_a_round_chooses_nobody(live: Live, fake: Any) -> None:
    alice = await live.register()
    mira, bram = await cast(alice, "Mira", "Bram")
    m, b = mira["id"], bram["id"]
    group = await make_group(alice, [mira, bram], strategy="natural", talkativeness={m: 1, b: 0})
    script(live, rolls=[0.5] * 10)
    await turn(alice, group, content="hi")  # Mira (Bram never rolls)
    # Mira spoke last and may not again; Bram never rolls and has talkativeness 0: nobody
    async with alice.stream(f"/api/groups/{group['id']}/continue", {"rounds": 3}) as sse:
        events = await sse.collect()
    assert [n for n, _ in events] == ["done"]
    r = await alice.request("POST", f"/api/groups/{group['id']}/continue", json={"rounds": 3})
    assert r.json() == {"rounds": []}
    # Bram speaks once, then Mira, then Bram... until nobody: with Bram at 1 both alternate
    await patch(alice, group, talkativeness={b: 1})
    rounds = await continue_(alice, group, 3)
    assert [r["speakers"] for r in rounds] == [[b], [m], [b]]


async def test_continue_is_one_generation_stop_and_conflicts(live: Live) -> None:
    alice = await live.register()
    mira, bram = await cast(alice, "Mira", "Bram")
    group = await make_group(alice, [mira, bram], strategy="manual")
    base = f"/api/groups/{group['id']}"
    # the directives in the user's message shape every later request of the conversation
    await turn(alice, group, content="slowly now [[fake:tokens=400]] [[fake:tps=40]]")
    await patch(alice, group, strategy="all")
    before = len(await history(alice, group))
    events: list[tuple[str, dict[str, Any]]] = []
    async with alice.stream(f"{base}/continue", {"rounds": 5}) as sse:
        seen: set[str] = set()
        async for _, name, data in sse:
            events.append((name, data))
            if name == "delta":
                seen.add(data["character_id"])
            if len(seen) == 2:
                break
        for method, path, body in [
            ("POST", "/messages", {"content": "me"}),
            ("POST", "/messages", {}),
            ("POST", "/continue", {}),
            ("DELETE", "", None),
        ]:
            r = await alice.request(method, base + path, json=body)
            assert r.status_code == 409 and r.json()["error"]["code"] == "generation_in_progress"
        r = await alice.request("POST", f"{base}/stop")
        assert r.json() == {"stopped": True}
        async for _, name, data in sse:
            events.append((name, data))
    names = [n for n, _ in events]
    assert names.count("round") == 1 and names[-1] == "done"
    replies = [d for n, d in events if n == "reply"]
    assert len(replies) == 2 and {r["status"] for r in replies} == {"interrupted"}
    assert all(r["content"] for r in replies)
    items = await history(alice, group)
    assert len(items) == before + 2 and all(m["content"] != "me" for m in items)
    r = await alice.request("POST", f"{base}/stop")
    assert r.json() == {"stopped": False}


async def test_continue_survives_a_client_disconnect(live: Live) -> None:
    alice = await live.register()
    mira, bram = await cast(alice, "Mira", "Bram")
    group = await make_group(alice, [mira, bram], strategy="all")
    await turn(alice, group, content="take your time [[fake:tps=200]]")
    async with alice.stream(f"/api/groups/{group['id']}/continue", {"rounds": 2}) as sse:
        async for _, name, _data in sse:
            if name == "delta":
                break  # the client goes away mid-round
    stored = await live.services.groups.get(int(alice.user["id"]), int(group["id"]))
    running = live.services.groups._lifecycle.running_generation(stored.conversation_id)
    if running is not None:
        with trio.fail_after(30):
            await running[1].finished.wait()
    items = await history(alice, group)
    assert len(items) == 3 + 4
    assert {m["status"] for m in items} == {"complete"}


async def test_shutdown_stores_the_rounds_partials_interrupted(db_url: str, fake: Any) -> None:
    settings = make_settings(db_url, fake.base_url)
    events: list[tuple[str, dict[str, Any]]] = []
    async with live_server(settings) as live:
        alice = await live.register()
        mira, bram = await cast(alice, "Mira", "Bram")
        group = await make_group(alice, [mira, bram], strategy="manual")
        await turn(alice, group, content="slow [[fake:tokens=400]] [[fake:tps=40]]")
        await patch(alice, group, strategy="all")
        async with alice.stream(f"/api/groups/{group['id']}/continue", {"rounds": 3}) as sse:
            seen: set[str] = set()
            async for _, name, data in sse:
                events.append((name, data))
                seen |= {data["character_id"]} if name == "delta" else set()
                if len(seen) == 2:
                    break
            live.stop.set()
            async for _, name, data in sse:
                events.append((name, data))
    assert events[-1][0] == "error" and events[-1][1]["code"] == "shutting_down"
    assert [n for n, _ in events].count("round") == 1
    async with live_server(settings) as again:
        alice = Session(again, alice.token, alice.user)
        items = await history(alice, group)
    assert [m["status"] for m in items[1:]] == ["interrupted", "interrupted"]
    assert all(m["content"] for m in items[1:])


async def test_continue_ends_with_an_error_when_every_speaker_of_a_round_fails(
    live: Live,
) -> None:
    alice = await live.register()
    mira, bram = await cast(alice, "Mira", "Bram")
    group = await make_group(alice, [mira, bram], strategy="manual")
    # stored without a reply; its directive breaks every later reply after one chunk
    await turn(alice, group, content="x [[fake:fault=mid_stream_error:after=1]]")
    await patch(alice, group, strategy="all")
    path = f"/api/groups/{group['id']}/continue"
    async with alice.stream(path, {"rounds": 3}) as sse:
        events = await sse.collect()
    names = [n for n, _ in events]
    assert names.count("round") == 1 and names[-1] == "error"
    error = events[-1][1]
    assert error["code"] == "llm_error"
    (failed_round,) = error["rounds"]
    assert {r["status"] for r in failed_round["replies"]} == {"error"}
    r = await alice.request("POST", path, json={"rounds": 2})
    assert r.status_code == 502 and r.json()["error"]["code"] == "llm_error"
