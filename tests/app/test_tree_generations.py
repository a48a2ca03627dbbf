"""Branch and regenerate: generations that add to the conversation tree (chat and group)."""

from __future__ import annotations

from typing import Any

from tests.app.harness import Live, Session


async def _path(s: Session, base: str) -> list[dict[str, Any]]:
    r = await s.request("GET", f"{base}/messages", params={"limit": 200})
    assert r.status_code == 200, r.text
    return r.json()["items"]  # type: ignore[no-any-return]


async def test_regenerations_keep_alternatives_and_select_moves_between_them(live: Live) -> None:
    alice = await live.register()
    mira = await alice.character("Mira")
    base = f"/api/characters/{mira['id']}/chat"
    first = (await alice.request("POST", base, json={"content": "hi"})).json()["reply"]
    replies = [first]
    for _ in range(3):
        r = await alice.request("POST", f"{base}/regenerate")
        assert r.status_code == 200, r.text
        replies.append(r.json()["reply"])
    path = await _path(alice, base)
    assert [m["id"] for m in path][-1] == replies[-1]["id"]
    assert path[-1]["sibling_count"] == 4 and path[-1]["sibling_index"] == 3
    assert {m["parent_id"] for m in replies} == {path[0]["id"]}
    # select the first reply back, then a middle one
    r = await alice.request("POST", f"{base}/messages/{first['id']}/select")
    assert r.status_code == 200, r.text
    assert [m["id"] for m in r.json()["items"]] == [path[0]["id"], first["id"]]
    # regenerate any assistant message: a sibling of it, made active
    r = await alice.request("POST", f"{base}/messages/{replies[1]['id']}/regenerate")
    assert r.status_code == 200, r.text
    newest = r.json()["reply"]
    path = await _path(alice, base)
    assert path[-1]["id"] == newest["id"] and path[-1]["sibling_count"] == 5


async def test_branch_from_the_first_message_then_select_back(live: Live) -> None:
    alice = await live.register()
    mira = await alice.character("Mira")
    base = f"/api/characters/{mira['id']}/chat"
    for i in range(5):
        r = await alice.request("POST", base, json={"content": f"m{i}"})
        assert r.status_code == 200, r.text
    original = [m["id"] for m in await _path(alice, base)]
    assert len(original) == 10
    async with alice.stream(
        f"{base}/messages/{original[0]}/branch", {"content": "another start"}
    ) as sse:
        events = await sse.collect()
    names = [n for n, _ in events]
    assert names[0] == "user_message" and names[-2:] == ["reply", "done"]
    branched = await _path(alice, base)
    assert [m["content"] for m in branched][0] == "another start" and len(branched) == 2
    assert branched[0]["sibling_count"] == 2
    r = await alice.request("POST", f"{base}/messages/{original[0]}/select")
    assert r.status_code == 200, r.text
    assert [m["id"] for m in await _path(alice, base)] == original


async def test_wrong_role_and_foreign_ids(live: Live) -> None:
    alice = await live.register()
    bob = await live.register("bob")
    mira = await alice.character("Mira")
    base = f"/api/characters/{mira['id']}/chat"
    sent = (await alice.request("POST", base, json={"content": "hi"})).json()
    user_id, reply_id = sent["user_message"]["id"], sent["reply"]["id"]
    r = await alice.request("POST", f"{base}/messages/{user_id}/regenerate")
    assert r.status_code == 400, r.text
    r = await alice.request("POST", f"{base}/messages/{reply_id}/branch", json={"content": "x"})
    assert r.status_code == 400, r.text
    other = await bob.character("Other")
    other_base = f"/api/characters/{other['id']}/chat"
    r = await bob.request("POST", f"{other_base}/messages/{reply_id}/regenerate")
    assert r.status_code == 404, r.text
    r = await alice.request("POST", f"{base}/messages/999999/regenerate")
    assert r.status_code == 404, r.text
    assert [m["id"] for m in await _path(alice, base)] == [user_id, reply_id]


async def test_edit_during_a_running_generation_conflicts(live: Live) -> None:
    alice = await live.register()
    mira = await alice.character("Mira")
    base = f"/api/characters/{mira['id']}/chat"
    sent = (await alice.request("POST", base, json={"content": "hi"})).json()
    async with alice.stream(base, {"content": "slow [[fake:ttft=30]]"}) as sse:
        async for _, name, _ in sse:
            if name == "user_message":
                break
        uid = sent["user_message"]["id"]
        r = await alice.request("PATCH", f"{base}/messages/{uid}", json={"content": "changed"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "generation_in_progress"
        r = await alice.request("POST", f"{base}/messages/{sent['reply']['id']}/regenerate")
        assert r.status_code == 409
        await alice.request("POST", f"{base}/stop")
        [n async for _, n, _ in sse]
    path = await _path(alice, base)
    assert path[0]["content"] == "hi"


async def test_group_regenerate_reruns_that_character_and_branch_reruns_a_turn(
    live: Live, fake: Any
) -> None:
    alice = await live.register()
    a, b = await alice.character("Ann"), await alice.character("Bob")
    base = f"/api/groups/{(await alice.group('G', [a, b]))['id']}"
    turn = (await alice.request("POST", f"{base}/messages", json={"content": "hello"})).json()
    first, second = sorted(turn["replies"], key=lambda m: int(m["id"]))  # in stored order
    since = len(fake.requests)
    r = await alice.request("POST", f"{base}/messages/{first['id']}/regenerate")
    assert r.status_code == 200, r.text
    again = r.json()
    assert again["speakers"] == [first["character_id"]] and len(again["replies"]) == 1
    new = again["replies"][0]
    assert new["parent_id"] == first["parent_id"] and new["character_id"] == first["character_id"]
    assert len(fake.requests) == since + 1  # that character only
    path = await _path(alice, base)
    assert [m["id"] for m in path] == [turn["user_message"]["id"], new["id"]]
    # the old reply and the one after it stay on their branch
    r = await alice.request("POST", f"{base}/messages/{first['id']}/select")
    assert [m["id"] for m in r.json()["items"]][-2:] == [first["id"], second["id"]]
    # branch from the user message: a whole turn again
    r = await alice.request(
        "POST", f"{base}/messages/{turn['user_message']['id']}/branch", json={"content": "hey"}
    )
    assert r.status_code == 200, r.text
    branched = r.json()
    assert branched["user_message"]["content"] == "hey" and len(branched["replies"]) == 2
    path = await _path(alice, base)
    assert [m["content"] for m in path][0] == "hey" and len(path) == 3
