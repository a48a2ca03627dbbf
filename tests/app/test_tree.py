"""Conversation trees over HTTP, for one-to-one chats and groups: select, edit, delete,
export/import, 404 for foreign ids, 409 while a generation runs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from storage import conversations, generations, groups, messages
from storage.records import Message
from storage.timestamps import utcnow
from tests.app.harness import Live, Session


@dataclass
class Conv:
    prefix: str  # /api/characters/{id}/chat or /api/groups/{id}
    id: int  # the conversation id in storage
    speaker: int  # the character id replies are stored under
    session: Session
    live: Live

    async def add(self, role: str, content: str, **kw: Any) -> Message:
        if role == "assistant":
            kw.setdefault("character_id", self.speaker)
        message: Message = await self.live.services.db.write(
            messages.add_message, self.id, role, content, **kw
        )
        return message

    async def chain(self, n: int, prefix: str = "m") -> list[Message]:
        return [await self.add(("user", "assistant")[i % 2], f"{prefix}{i}") for i in range(n)]

    async def call(self, method: str, path: str, **kw: Any) -> Any:
        return await self.session.request(method, f"{self.prefix}{path}", **kw)

    async def path(self) -> list[str]:
        r = await self.call("GET", "/messages", params={"limit": 200})
        assert r.status_code == 200, r.text
        return [m["content"] for m in r.json()["items"]]


@pytest.fixture(params=["chat", "group"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def new_conv(live: Live, s: Session, kind: str, name: str = "Mira") -> Conv:
    user_id = int(s.user["id"])
    db = live.services.db
    if kind == "chat":
        character = await s.character(name)
        conv = await db.write(conversations.get_or_create_direct, user_id, int(character["id"]))
        return Conv(
            f"/api/characters/{character['id']}/chat", conv.id, int(character["id"]), s, live
        )
    members = [await s.character(f"{name}A"), await s.character(f"{name}B")]
    r = await s.request(
        "POST", "/api/groups", json={"name": name, "character_ids": [m["id"] for m in members]}
    )
    assert r.status_code == 201, r.text
    group = await db.read(groups.get_group, user_id, int(r.json()["id"]))
    return Conv(f"/api/groups/{group.id}", group.conversation_id, group.character_ids[0], s, live)


async def test_select_moves_between_alternatives_and_branches(live: Live, kind: str) -> None:
    alice = await live.register()
    conv = await new_conv(live, alice, kind)
    trunk = await conv.chain(10)
    # two more alternatives of the last reply (as regenerate makes them)
    alt1 = await conv.add("assistant", "alt1", parent_id=trunk[8].id, model="fake/model")
    alt2 = await conv.add("assistant", "alt2", parent_id=trunk[8].id)
    assert await conv.path() == [f"m{i}" for i in range(9)] + ["alt2"]
    r = await conv.call("GET", "/messages", params={"limit": 2})
    last = r.json()["items"][-1]
    assert (last["id"], last["parent_id"]) == (str(alt2.id), str(trunk[8].id))
    assert (last["sibling_index"], last["sibling_count"]) == (2, 3)
    assert last["edited_at"] is None and "model" in last

    r = await conv.call("POST", f"/messages/{trunk[9].id}/select")
    assert r.status_code == 200, r.text
    page = r.json()
    assert [m["content"] for m in page["items"]] == [f"m{i}" for i in range(10)]
    assert page["items"][-1]["sibling_index"] == 0 and page["next_before"] is None
    r = await conv.call("POST", f"/messages/{alt1.id}/select")
    assert r.json()["items"][-1]["content"] == "alt1"
    assert r.json()["items"][-1]["model"] == "fake/model"

    # a branch from the first message, then select the first message back
    await conv.add("user", "b0", parent_id=None)
    await conv.add("assistant", "b1")
    assert await conv.path() == ["b0", "b1"]
    r = await conv.call("POST", f"/messages/{trunk[0].id}/select")
    assert [m["content"] for m in r.json()["items"]] == [f"m{i}" for i in range(9)] + ["alt1"]
    assert r.json()["items"][0]["sibling_count"] == 2
    # the last page of a long path has a next_before
    await conv.chain(60, prefix="x")
    r = await conv.call("POST", f"/messages/{trunk[0].id}/select")
    assert len(r.json()["items"]) == 50 and r.json()["next_before"] is not None


async def test_delete_moves_the_active_path(live: Live, kind: str) -> None:
    alice = await live.register()
    conv = await new_conv(live, alice, kind)
    trunk = await conv.chain(4)
    other = await conv.add("assistant", "other", parent_id=trunk[2].id)
    await conv.add("user", "after other")
    r = await conv.call("DELETE", f"/messages/{other.id}")
    assert r.status_code == 204, r.text
    # the parent's most recently active remaining child, walked down
    assert await conv.path() == ["m0", "m1", "m2", "m3"]
    assert (await conv.call("DELETE", f"/messages/{trunk[3].id}")).status_code == 204
    assert await conv.path() == ["m0", "m1", "m2"]  # no child left: ends at the parent
    assert (await conv.call("DELETE", f"/messages/{trunk[1].id}")).status_code == 204
    assert await conv.path() == ["m0"]
    assert (await conv.call("DELETE", f"/messages/{trunk[1].id}")).status_code == 404
    assert (await conv.call("POST", f"/messages/{trunk[2].id}/select")).status_code == 404


async def test_edit_in_place(live: Live, kind: str) -> None:
    alice = await live.register()
    conv = await new_conv(live, alice, kind)
    trunk = await conv.chain(2)
    for message in trunk:  # user and assistant messages alike
        r = await conv.call("PATCH", f"/messages/{message.id}", json={"content": "fixed"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["id"] == str(message.id) and body["content"] == "fixed"
        assert body["edited_at"] is not None and body["role"] == message.role
    assert await conv.path() == ["fixed", "fixed"]
    for bad in ({"content": ""}, {"content": 5}, {}, {"content": "x", "extra": 1}):
        r = await conv.call("PATCH", f"/messages/{trunk[0].id}", json=bad)
        assert r.status_code == 400, bad
    assert await conv.path() == ["fixed", "fixed"]


async def test_foreign_and_malformed_ids_are_404(live: Live, kind: str) -> None:
    alice = await live.register()
    conv = await new_conv(live, alice, kind)
    mine = await conv.chain(2)
    elsewhere = await new_conv(live, alice, kind, name="Other")
    theirs = await elsewhere.chain(2)
    bob = await live.register("bob")
    bobs = await new_conv(live, bob, kind, name="Bob")
    bob_message = (await bobs.chain(1))[0]
    for foreign in (theirs[0].id, bob_message.id, 10**9):
        for method, path, body in (
            ("POST", f"/messages/{foreign}/select", None),
            ("PATCH", f"/messages/{foreign}", {"content": "x"}),
            ("DELETE", f"/messages/{foreign}", None),
        ):
            r = await conv.call(method, path, json=body)
            assert r.status_code == 404, (method, path, r.text)
            assert r.json()["error"]["code"] == "not_found"
    # another user's conversation is invisible as a whole
    r = await alice.request("POST", f"{bobs.prefix}/messages/{bob_message.id}/select")
    assert r.status_code == 404
    r = await alice.request("GET", f"{bobs.prefix}/export")
    assert r.status_code == 404
    for malformed in ("abc", f"0{mine[0].id}", f"+{mine[0].id}"):
        r = await conv.call("POST", f"/messages/{malformed}/select")
        assert r.status_code == 404, malformed
    assert await conv.path() == ["m0", "m1"] and await elsewhere.path() == ["m0", "m1"]
    assert mine[1].parent_id == mine[0].id


async def test_changes_get_409_while_a_generation_runs(live: Live, kind: str) -> None:
    alice = await live.register()
    conv = await new_conv(live, alice, kind)
    trunk = await conv.chain(4)
    alt = await conv.add("assistant", "alt", parent_id=trunk[2].id)
    db = live.services.db
    generation = await db.write(
        generations.begin_generation, conv.id, owner="elsewhere", lease_seconds=60, now=utcnow()
    )
    assert generation is not None
    for method, path, body in (
        ("POST", f"/messages/{trunk[3].id}/select", None),
        ("PATCH", f"/messages/{trunk[0].id}", {"content": "changed"}),
        ("DELETE", f"/messages/{trunk[1].id}", None),
    ):
        r = await conv.call(method, path, json=body)
        assert r.status_code == 409, (method, path, r.text)
        assert r.json()["error"]["code"] == "generation_in_progress", r.text
    assert await conv.path() == ["m0", "m1", "m2", "alt"]
    # reading and exporting still work
    assert (await conv.call("GET", "/export")).status_code == 200
    await db.write(generations.end_generation, generation)
    r = await conv.call("POST", f"/messages/{trunk[3].id}/select")
    assert r.status_code == 200 and alt.id != trunk[3].id


def _shape(document: dict[str, Any]) -> tuple[Any, ...]:
    """A tree document without its ids: everything a round trip must keep."""
    position = {m["id"]: i for i, m in enumerate(document["messages"])}
    rows = [
        (
            m["role"],
            m["content"],
            m["status"],
            None if m["parent_id"] is None else position[m["parent_id"]],
            m["sibling_index"],
            m["sibling_count"],
            m["edited_at"],
            m["model"],
            m["created_at"],
        )
        for m in document["messages"]
    ]
    return tuple(rows), position[document["active_leaf_id"]]


async def test_export_import_round_trip(live: Live, kind: str) -> None:
    alice = await live.register()
    source = await new_conv(live, alice, kind)
    trunk = await source.chain(4)
    await source.add("assistant", "alt", parent_id=trunk[2].id, model="m/1", status="error")
    await source.add("user", "deeper")
    await source.add("user", "root branch", parent_id=None)
    r = await source.call("PATCH", f"/messages/{trunk[1].id}", json={"content": "edited ✓"})
    assert r.status_code == 200
    r = await source.call("POST", f"/messages/{trunk[3].id}/select")
    assert r.status_code == 200
    exported = (await source.call("GET", "/export")).json()
    assert exported["format"] == "fastnpc-conversation" and exported["version"] == 1
    assert len(exported["messages"]) == 7 and exported["active_leaf_id"] == str(trunk[3].id)

    target = await new_conv(live, alice, kind, name="Copy")
    if kind == "group":  # replies must name members of the target group
        r = await alice.request(
            "PATCH",
            target.prefix,
            json={"character_ids": [str(c) for c in await _members(live, source)]},
        )
        assert r.status_code == 200, r.text
    r = await target.call("POST", "/import", json=exported)
    assert r.status_code == 200, r.text
    assert [m["content"] for m in r.json()["items"]] == ["m0", "edited ✓", "m2", "m3"]
    again = (await target.call("GET", "/export")).json()
    assert _shape(again) == _shape(exported)
    assert {m["id"] for m in again["messages"]}.isdisjoint({m["id"] for m in exported["messages"]})

    # only into an empty conversation
    r = await target.call("POST", "/import", json=exported)
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"

    # SillyTavern JSONL: the active path, a header line first
    r = await source.call("GET", "/export", params={"format": "jsonl"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/jsonl")
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert "mes" not in lines[0] and "character_name" in lines[0]
    assert [(x["is_user"], x["mes"]) for x in lines[1:]] == [
        (True, "m0"),
        (False, "edited ✓"),
        (True, "m2"),
        (False, "m3"),
    ]
    assert all(isinstance(x["name"], str) and x["send_date"] for x in lines[1:])
    third = await new_conv(live, alice, kind, name="Third")
    if kind == "group":
        r = await alice.request(
            "PATCH",
            third.prefix,
            json={"character_ids": [str(c) for c in await _members(live, source)]},
        )
        assert r.status_code == 200
    r = await third.call("POST", "/import", content=_jsonl(lines), headers=_ndjson())
    assert r.status_code == 200, r.text
    assert await third.path() == ["m0", "edited ✓", "m2", "m3"]
    page = (await third.call("GET", "/messages")).json()["items"]
    assert [m["sibling_count"] for m in page] == [1, 1, 1, 2]
    assert [m["character_id"] is None for m in page] == [True, False, True, False]
    # the reply's alternative travelled as SillyTavern swipes and came back as a sibling
    assert (lines[4]["swipes"], lines[4]["swipe_id"]) == (["m3", "alt"], 0)
    assert "swipes" not in lines[2]
    root = (await third.call("GET", "/export")).json()["messages"]
    alternative = next(m for m in root if m["content"] == "alt")
    r = await third.call("POST", f"/messages/{alternative['id']}/select")
    assert [m["content"] for m in r.json()["items"]] == ["m0", "edited ✓", "m2", "alt"]


async def _members(live: Live, conv: Conv) -> list[int]:
    user_id = int(conv.session.user["id"])
    group = await live.services.db.read(groups.get_group, user_id, int(conv.prefix.split("/")[-1]))
    return list(group.character_ids)


def _jsonl(lines: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(line) + "\n" for line in lines)


def _ndjson() -> dict[str, str]:
    return {"Content-Type": "application/x-ndjson"}


async def test_invalid_import_is_400_and_stores_nothing(live: Live, kind: str) -> None:
    alice = await live.register()
    conv = await new_conv(live, alice, kind)

    def tree(*items: dict[str, Any], leaf: str | None = "1") -> dict[str, Any]:
        return {
            "format": "fastnpc-conversation",
            "version": 1,
            "messages": list(items),
            "active_leaf_id": leaf,
        }

    user = {"id": "1", "role": "user", "content": "hi", "parent_id": None}
    reply = {"id": "2", "role": "assistant", "content": "yo", "parent_id": "1"}
    stranger = {**reply, "character_id": "999999"}
    bad_json_bodies: list[Any] = [
        tree(user, {**reply, "parent_id": "3"}),  # parent not earlier
        tree(user, {**user}),  # duplicate id
        tree({**user, "role": "system"}),
        tree({**user, "content": 5}),
        tree({**user, "status": "streaming"}),
        tree(user, leaf="7"),
        {**tree(user), "format": "other"},
        {**tree(user), "version": 2},
        {**tree(user), "messages": {}},
        [user],
    ]
    if kind == "group":
        bad_json_bodies.append(tree(user, stranger, leaf="2"))
    for body in bad_json_bodies:
        r = await conv.call("POST", "/import", json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["code"] == "invalid_request"
    header = json.dumps({"user_name": "u", "character_name": "c"})
    bad_jsonl = [
        "",
        json.dumps({"name": "u", "is_user": True, "mes": "no header"}),
        header + "\n" + json.dumps({"name": "u", "mes": "no is_user"}),
        header + "\n" + json.dumps({"name": "u", "is_user": "yes", "mes": "x"}),
        header + "\n{not json",
        header + "\n" + json.dumps({"is_user": True, "mes": "no name"}),
    ]
    reply_line = {"name": "c", "is_user": False, "mes": "x"}
    bad_jsonl += [
        header + "\n" + json.dumps({**reply_line, "swipes": "x"}),
        header + "\n" + json.dumps({**reply_line, "swipes": ["x", 3]}),
        header + "\n" + json.dumps({**reply_line, "swipes": ["x", "y"], "swipe_id": 2}),
    ]
    if kind == "group":
        bad_jsonl.append(
            header + "\n" + json.dumps({"name": "Nobody", "is_user": False, "mes": "x"})
        )
    for text in bad_jsonl:
        r = await conv.call("POST", "/import", content=text, headers=_ndjson())
        assert r.status_code == 400, (text, r.text)
    r = await conv.call(
        "POST", "/import", content=json.dumps(tree(user)), headers={"Content-Type": "text/plain"}
    )
    assert r.status_code == 400
    exported = (await conv.call("GET", "/export")).json()
    assert exported["messages"] == [] and exported["active_leaf_id"] is None
    # a valid import still works afterwards (nothing half-stored blocks it)
    r = await conv.call("POST", "/import", json=tree(user))
    assert r.status_code == 200, r.text
    assert await conv.path() == ["hi"]


async def test_openapi_lists_tree_routes_and_fields(live: Live) -> None:
    r = await live.client.get("/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    for prefix in ("/api/characters/{character_id}/chat", "/api/groups/{group_id}"):
        assert "post" in spec["paths"][f"{prefix}/messages/{{message_id}}/select"]
        assert {"patch", "delete"} <= set(spec["paths"][f"{prefix}/messages/{{message_id}}"])
        assert "get" in spec["paths"][f"{prefix}/export"]
        assert "post" in spec["paths"][f"{prefix}/import"]
    fields = spec["components"]["schemas"]["MessageOut"]["properties"]
    assert {"parent_id", "sibling_index", "sibling_count", "edited_at", "model"} <= set(fields)


async def test_group_turn_replies_chain_in_stored_order(live: Live) -> None:
    alice = await live.register()
    members = [await alice.character("Mira"), await alice.character("Bram")]
    group = await alice.group("g", members)
    r = await alice.request(
        "POST", f"/api/groups/{group['id']}/messages", json={"content": "hello both"}
    )
    assert r.status_code == 200, r.text
    turn = r.json()
    r = await alice.request("GET", f"/api/groups/{group['id']}/messages")
    items = r.json()["items"]
    assert [m["id"] for m in items][0] == turn["user_message"]["id"]
    assert len(items) == 3 and {m["id"] for m in items[1:]} == {m["id"] for m in turn["replies"]}
    assert [m["parent_id"] for m in items] == [None, items[0]["id"], items[1]["id"]]
    assert all(m["sibling_count"] == 1 for m in items)
