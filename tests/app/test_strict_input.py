"""Strict input over real HTTP: no coercion into numbers or booleans, canonical ids, page
cursors and member ids that must name something, one password rule for register and login."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.app.harness import Live, Session, live_server, make_settings


@pytest.fixture
async def live(db_url: str, fake: Any) -> AsyncIterator[Live]:
    settings = make_settings(
        db_url, fake.base_url, admin_username="root", admin_password="rootpassword"
    )
    async with live_server(settings) as server:
        yield server


async def _admin(live: Live) -> Session:
    r = await live.client.post(
        "/api/auth/login", json={"username": "root", "password": "rootpassword"}
    )
    assert r.status_code == 200, r.text
    return Session(live, r.json()["token"], r.json()["user"])


def _assert_invalid(r: Any) -> None:
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_request"


async def test_numbers_and_booleans_are_not_coerced(live: Live) -> None:
    root = await _admin(live)
    before = (await root.request("GET", "/api/admin/llm")).json()["limiter"]["total"]
    for value in (True, "5", 5.5, None):
        r = await root.request("PUT", "/api/admin/llm/limits", json={"max_concurrency": value})
        _assert_invalid(r)
    assert (await root.request("GET", "/api/admin/llm")).json()["limiter"]["total"] == before
    r = await root.request("PUT", "/api/admin/llm/limits", json={"max_concurrency": 5})
    assert r.status_code == 200 and r.json()["total"] == 5
    # JSON Schema's integers include 6.0 (the document says `integer`)
    r = await root.request("PUT", "/api/admin/llm/limits", json={"max_concurrency": 6.0})
    assert r.status_code == 200 and r.json()["total"] == 6

    alice = await live.register()
    user_path = f"/api/admin/users/{alice.user['id']}"
    for flag in ({"disabled": 1}, {"disabled": "true"}, {"is_admin": 0}):
        _assert_invalid(await root.request("PATCH", user_path, json=flag))
    assert (await alice.request("GET", "/api/me")).json()["disabled"] is False

    mira, bram = await alice.character("Mira"), await alice.character("Bram")
    members = [mira["id"], bram["id"]]
    for fields in ({"max_speakers": "2"}, {"max_speakers": True}, {"character_ids": [1, 2]}):
        body = {"name": "Tavern", "character_ids": members, **fields}
        _assert_invalid(await alice.request("POST", "/api/groups", json=body))
    for body in ({"name": 5}, {"content": 5}):
        path = "/api/characters" if "name" in body else f"/api/characters/{mira['id']}/chat"
        _assert_invalid(await alice.request("POST", path, json=body))
    assert (await alice.request("GET", "/api/groups")).json()["items"] == []


async def test_ids_are_canonical(live: Live) -> None:
    alice = await live.register()
    mira = await alice.character("Mira")
    assert (await alice.request("GET", f"/api/characters/{mira['id']}")).status_code == 200
    for alias in (f"0{mira['id']}", f"+{mira['id']}", f"{mira['id']}.0", f" {mira['id']}"):
        r = await alice.request("GET", f"/api/characters/{alias}")
        assert r.status_code == 404, alias
        assert r.json()["error"]["code"] == "not_found"
        r = await alice.request("POST", f"/api/characters/{alias}/chat", json={"content": "hi"})
        assert r.status_code == 404, alias
    # an id in a body that is not canonical names nothing either: 400
    bram = await alice.character("Bram")
    body = {"name": "Tavern", "character_ids": [f"0{mira['id']}", bram["id"]]}
    _assert_invalid(await alice.request("POST", "/api/groups", json=body))


async def test_unknown_before_is_400_on_both_histories(live: Live) -> None:
    alice = await live.register()
    mira, bram = await alice.character("Mira"), await alice.character("Bram")
    r = await alice.request("POST", f"/api/characters/{mira['id']}/chat", json={"content": "hi"})
    assert r.status_code == 200, r.text
    reply_id = r.json()["reply"]["id"]
    group = (
        await alice.request(
            "POST", "/api/groups", json={"name": "T", "character_ids": [mira["id"], bram["id"]]}
        )
    ).json()
    r = await alice.request("POST", f"/api/groups/{group['id']}/messages", json={"content": "x"})
    assert r.status_code == 200, r.text
    group_message = r.json()["user_message"]["id"]

    chat = f"/api/characters/{mira['id']}/chat/messages"
    turns = f"/api/groups/{group['id']}/messages"
    for path, own, foreign in ((chat, reply_id, group_message), (turns, group_message, reply_id)):
        r = await alice.request("GET", path, params={"before": own})
        assert r.status_code == 200 and all(int(m["id"]) < int(own) for m in r.json()["items"])
        for before in ("99999", foreign, f"0{own}", "x"):
            r = await alice.request("GET", path, params={"before": before})
            _assert_invalid(r)


async def test_group_memories_of_a_non_member_are_400(live: Live) -> None:
    alice = await live.register()
    mira, bram, cole = [await alice.character(n) for n in ("Mira", "Bram", "Cole")]
    body = {"name": "T", "character_ids": [mira["id"], bram["id"]]}
    group = (await alice.request("POST", "/api/groups", json=body)).json()
    path = f"/api/groups/{group['id']}/memories"
    r = await alice.request("GET", path, params={"character_id": mira["id"]})
    assert r.status_code == 200 and r.json()["items"] == []
    for other in (cole["id"], "99999", f"0{mira['id']}"):
        _assert_invalid(await alice.request("GET", path, params={"character_id": other}))
    # another user's group stays invisible, whatever the character id
    bob = await live.register("bob")
    r = await bob.request("GET", path, params={"character_id": cole["id"]})
    assert r.status_code == 404


async def test_one_password_rule_for_register_and_login(live: Live) -> None:
    await live.register("alice", "p" * 256)
    r = await live.client.post("/api/auth/login", json={"username": "alice", "password": "p" * 256})
    assert r.status_code == 200, r.text
    for password in ("p" * 257, "p" * 1024, "p" * 7):
        body = {"username": "alice", "password": password}
        _assert_invalid(await live.client.post("/api/auth/login", json=body))
        body = {"username": "carol", "password": password}
        _assert_invalid(await live.client.post("/api/auth/register", json=body))
