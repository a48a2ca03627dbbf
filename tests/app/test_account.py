"""Account and usage through HTTP: password change, account deletion (nothing left behind),
settings, usage and quotas, character copy, feedback, prompt snapshots."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from storage import jobs
from storage.schema import metadata
from tests.app.harness import (
    Live,
    Session,
    admin_session,
    live_server,
    login,
    make_settings,
    settings_with_admin,
)
from tests.app.images import picture


@pytest.fixture
async def live(db_url: str, fake: Any) -> AsyncIterator[Live]:
    async with live_server(settings_with_admin(db_url, fake.base_url)) as server:
        yield server


admin = admin_session


async def chat(session: Session, character_id: str, content: str = "hi") -> Any:
    r = await session.request(
        "POST", f"/api/characters/{character_id}/chat", json={"content": content}
    )
    return r


async def test_password_change_revokes_the_other_tokens(live: Live) -> None:
    alice = await live.register()
    other = Session(live, (await login(live, "alice", "password123")).json()["token"], {})
    body = {"current_password": "wrong-password", "new_password": "newpassword1"}
    r = await alice.request("POST", "/api/me/password", json=body)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials"
    assert (await other.request("GET", "/api/me")).status_code == 200
    body["current_password"] = "password123"
    r = await alice.request("POST", "/api/me/password", json=body)
    assert r.status_code == 204
    assert (await alice.request("GET", "/api/me")).status_code == 200
    assert (await other.request("GET", "/api/me")).status_code == 401
    assert (await login(live, "alice", "password123")).status_code == 401
    assert (await login(live, "alice", "newpassword1")).status_code == 200
    r = await alice.request("POST", "/api/me/password", json={"current_password": "x"})
    assert r.status_code == 400


def _rows(live: Live) -> dict[str, int]:
    with live.services.db.engine.connect() as conn:
        return {
            name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for name, table in metadata.tables.items()
        }


def _rows_of(live: Live, user_id: int) -> dict[str, int]:
    """Rows naming the user (directly or through their characters/conversations)."""
    t = metadata.tables
    with live.services.db.engine.connect() as conn:
        convs = sa.select(t["conversations"].c.id).where(t["conversations"].c.user_id == user_id)
        chars = sa.select(t["characters"].c.id).where(t["characters"].c.user_id == user_id)
        counts = {}
        for name, table in t.items():
            conditions = []
            if "user_id" in table.c:
                conditions.append(table.c.user_id == user_id)
            if "conversation_id" in table.c:
                conditions.append(table.c.conversation_id.in_(convs))
            if "message_id" in table.c:
                messages = t["messages"]
                msgs = sa.select(messages.c.id).where(messages.c.conversation_id.in_(convs))
                conditions.append(table.c.message_id.in_(msgs))
            if "character_id" in table.c:
                conditions.append(table.c.character_id.in_(chars))
            if name == "users":
                conditions.append(table.c.id == user_id)
            if conditions:
                query = sa.select(sa.func.count()).select_from(table).where(sa.or_(*conditions))
                counts[name] = conn.execute(query).scalar_one()
        return counts


async def test_account_deletion_leaves_nothing_of_the_user(live: Live, fake: Any) -> None:
    boss = await admin(live)
    bob = await live.register("bob")
    bob_char = await bob.character("Keep")
    assert (await chat(bob, bob_char["id"])).status_code == 200
    alice = await live.register()
    mira = await alice.character("Mira")
    bram = await alice.character("Bram")
    png = fake_png()
    r = await alice.request(
        "PUT", f"/api/characters/{mira['id']}/avatar", content=png,
        headers={"Content-Type": "image/png"},
    )
    assert r.status_code == 200, r.text
    r = await chat(alice, mira["id"])
    assert r.status_code == 200
    reply_id = r.json()["reply"]["id"]
    with live.services.db.engine.begin() as conn:
        conv = conn.execute(
            sa.select(metadata.tables["conversations"].c.id).where(
                metadata.tables["conversations"].c.user_id == int(alice.user["id"])
            )
        ).scalar_one()
    await live.services.db.write(jobs.enqueue, "test", {"conversation_id": conv})
    group = await alice.group("G", [mira, bram])
    r = await alice.request("POST", f"/api/groups/{group['id']}/messages", json={"content": "yo"})
    assert r.status_code == 200
    await alice.request("PUT", "/api/me/persona", json={"name": "Al", "description": "me"})
    await alice.request("PATCH", "/api/me/settings", json={"language": "en"})
    r = await alice.request("POST", "/api/feedback", json={"message_id": reply_id, "rating": 1})
    assert r.status_code == 201
    await boss.request("PATCH", f"/api/admin/users/{alice.user['id']}",
                       json={"monthly_token_quota": 10**6})
    user_id = int(alice.user["id"])
    before = _rows(live)
    mine = _rows_of(live, user_id)
    for table in ("characters", "conversations", "messages", "api_tokens", "personas",
                  "user_settings", "usage_daily", "feedback", "prompt_snapshots"):
        assert mine[table] > 0, (table, mine)
    assert before["avatars"] == 1 and before["jobs"] == 1  # about alice's chat

    r = await alice.request("DELETE", "/api/me", json={"password": "wrong-password"})
    assert r.status_code == 401
    r = await alice.request("DELETE", "/api/me", json={"password": "password123"})
    assert r.status_code == 204
    after = _rows(live)
    assert all(n == 0 for n in _rows_of(live, user_id).values()), _rows_of(live, user_id)
    assert after["avatars"] == 0  # no other character showed it
    assert after["jobs"] == 0
    assert after["users"] == before["users"] - 1
    assert after["messages"] == before["messages"] - mine["messages"]
    assert after["characters"] == before["characters"] - mine["characters"]
    assert (await alice.request("GET", "/api/me")).status_code == 401
    # bob's data is untouched
    r = await bob.request("GET", f"/api/characters/{bob_char['id']}/chat/messages")
    assert r.status_code == 200 and len(r.json()["items"]) == 2

    r = await boss.request("DELETE", "/api/me", json={"password": "rootpassword"})
    assert r.status_code == 409  # the last enabled admin


def fake_png() -> bytes:
    return picture((8, 8))


async def test_settings(live: Live) -> None:
    alice = await live.register()
    r = await alice.request("GET", "/api/me/settings")
    assert r.json() == {"language": None, "default_model": None}
    r = await alice.request("PATCH", "/api/me/settings", json={"language": "zh"})
    assert r.status_code == 200 and r.json() == {"language": "zh", "default_model": None}
    r = await alice.request("PATCH", "/api/me/settings", json={"default_model": "a/b-1"})
    assert r.json() == {"language": "zh", "default_model": "a/b-1"}
    for bad in ({"language": "fr"}, {"default_model": "bad model!"}, {"default_model": 5}):
        r = await alice.request("PATCH", "/api/me/settings", json=bad)
        assert r.status_code == 400, bad
    r = await alice.request("PATCH", "/api/me/settings", json={"default_model": None})
    assert r.json() == {"language": "zh", "default_model": None}
    assert (await alice.request("GET", "/api/me/settings")).json()["language"] == "zh"


async def test_usage_and_quota_boundary(live: Live) -> None:
    boss = await admin(live)
    alice = await live.register()
    mira = await alice.character("Mira")
    r = await alice.request("GET", "/api/me/usage")
    assert r.json() == {"days": [], "quota": {"monthly_tokens": None, "used": 0}}
    assert (await chat(alice, mira["id"])).status_code == 200
    r = await alice.request("GET", "/api/me/usage?days=30")
    (day,) = r.json()["days"]
    assert day["calls"] == 1 and day["prompt_tokens"] > 0 and day["completion_tokens"] > 0
    assert day["cost"] > 0 and day["model"]
    per_call = day["prompt_tokens"] + day["completion_tokens"]
    assert r.json()["quota"] == {"monthly_tokens": None, "used": per_call}

    # the next call crosses the quota: it completes; the one after is refused
    quota = per_call + 1
    r = await boss.request(
        "PATCH", f"/api/admin/users/{alice.user['id']}", json={"monthly_token_quota": quota}
    )
    assert r.status_code == 200 and r.json()["monthly_token_quota"] == quota
    assert (await chat(alice, mira["id"], "again")).status_code == 200
    before = (await alice.request("GET", f"/api/characters/{mira['id']}/chat/messages")).json()
    r = await chat(alice, mira["id"], "refused")
    assert r.status_code == 429 and r.json()["error"]["code"] == "quota_exceeded"
    assert int(r.headers["Retry-After"]) > 0
    r = await alice.request("POST", f"/api/characters/{mira['id']}/chat/regenerate")
    assert r.status_code == 429
    after = (await alice.request("GET", f"/api/characters/{mira['id']}/chat/messages")).json()
    assert after == before  # nothing stored
    r = await alice.request("GET", "/api/me/usage")
    assert r.json()["quota"]["used"] >= quota and r.json()["days"][0]["calls"] == 2

    r = await boss.request("GET", f"/api/admin/usage?user_id={alice.user['id']}&days=7")
    assert r.status_code == 200
    assert r.json()["days"][0]["user_id"] == alice.user["id"]
    assert r.json()["quota"]["monthly_tokens"] == quota
    r = await boss.request("GET", "/api/admin/usage")
    assert {d["user_id"] for d in r.json()["days"]} == {alice.user["id"]}
    assert (await alice.request("GET", "/api/admin/usage")).status_code == 403
    assert (await alice.request("GET", "/api/me/usage?days=0")).status_code == 400

    # lifting the quota lets her chat again
    r = await boss.request(
        "PATCH", f"/api/admin/users/{alice.user['id']}", json={"monthly_token_quota": None}
    )
    assert r.json()["monthly_token_quota"] is None
    assert (await chat(alice, mira["id"], "free")).status_code == 200


async def test_copy_character(live: Live) -> None:
    alice = await live.register()
    bob = await live.register("bob")
    mira = await alice.character("Mira")
    r = await alice.request(
        "PATCH", f"/api/characters/{mira['id']}",
        json={"greeting": "Hello", "tags": ["a"], "settings": {"temperature": 0.5}},
    )
    assert r.status_code == 200, r.text
    await alice.request(
        "PUT", f"/api/characters/{mira['id']}/avatar", content=fake_png(),
        headers={"Content-Type": "image/png"},
    )
    original = (await alice.request("GET", f"/api/characters/{mira['id']}")).json()
    assert (await chat(alice, mira["id"])).status_code == 200
    r = await alice.request("POST", f"/api/characters/{mira['id']}/copy")
    assert r.status_code == 201
    copy = r.json()
    assert copy["id"] != mira["id"]
    for key in ("name", "profile", "greeting", "tags", "settings", "avatar_url"):
        assert copy.get(key) == original.get(key), key
    r = await alice.request("GET", f"/api/characters/{copy['id']}/chat/messages")
    # no conversation is copied: the copy's opens with its greeting alone
    assert [(m["role"], m["content"]) for m in r.json()["items"]] == [("assistant", "Hello")]
    assert (await bob.request("POST", f"/api/characters/{mira['id']}/copy")).status_code == 404
    # the avatar survives deleting the original
    assert (await alice.request("DELETE", f"/api/characters/{mira['id']}")).status_code == 204
    if copy.get("avatar_url"):
        assert (await alice.request("GET", copy["avatar_url"])).status_code == 200


async def test_feedback(live: Live) -> None:
    boss = await admin(live)
    alice = await live.register()
    bob = await live.register("bob")
    mira = await alice.character("Mira")
    reply = (await chat(alice, mira["id"])).json()["reply"]
    r = await alice.request(
        "POST", "/api/feedback", json={"message_id": reply["id"], "rating": -1, "comment": "meh"}
    )
    assert r.status_code == 201
    assert r.json()["message_id"] == reply["id"] and r.json()["rating"] == -1
    r = await alice.request("POST", "/api/feedback", json={"comment": "nice app"})
    assert r.status_code == 201
    for bad in ({}, {"rating": 0}, {"rating": 2}, {"comment": "x" * 2001}, {"rating": "1"}):
        assert (await alice.request("POST", "/api/feedback", json=bad)).status_code == 400, bad
    # another user's message is 400
    r = await bob.request("POST", "/api/feedback", json={"message_id": reply["id"], "rating": 1})
    assert r.status_code == 400
    assert (await alice.request("GET", "/api/admin/feedback")).status_code == 403
    r = await boss.request("GET", "/api/admin/feedback?limit=1")
    assert r.status_code == 200
    (newest,) = r.json()["items"]
    assert newest["comment"] == "nice app" and newest["message"] is None
    assert newest["user"]["username"] == "alice"
    r = await boss.request("GET", f"/api/admin/feedback?before={r.json()['next_before']}")
    (oldest,) = r.json()["items"]
    assert oldest["message"]["id"] == reply["id"] and oldest["message"]["content"]
    assert r.json()["next_before"] is None


async def test_prompt_snapshot(live: Live) -> None:
    boss = await admin(live)
    alice = await live.register()
    mira = await alice.character("Mira")
    r = await chat(alice, mira["id"], "tell me about 盔甲")
    reply = r.json()["reply"]
    r = await boss.request("GET", f"/api/admin/messages/{reply['id']}/prompt")
    assert r.status_code == 200, r.text
    snapshot = r.json()
    assert snapshot["messages"][-1] == {"role": "user", "content": "tell me about 盔甲"}
    assert snapshot["messages"][0]["role"] == "system" and "Mira" in snapshot["messages"][0][
        "content"
    ]
    assert snapshot["model"] == live.services.settings.llm.model
    assert (await alice.request("GET", f"/api/admin/messages/{reply['id']}/prompt")).status_code \
        == 403
    history = f"/api/characters/{mira['id']}/chat/messages"
    user_message = (await alice.request("GET", history)).json()
    assert (
        await boss.request("GET", f"/api/admin/messages/{user_message['items'][0]['id']}/prompt")
    ).status_code == 404
    # expired: the purge deletes it, and it is 404 afterwards
    snapshots = live.services.snapshots
    snapshots.days = 0
    assert (await boss.request("GET", f"/api/admin/messages/{reply['id']}/prompt")).status_code \
        == 404
    assert await snapshots.purge() == 1
    snapshots.days = 7
    assert (await boss.request("GET", f"/api/admin/messages/{reply['id']}/prompt")).status_code \
        == 404


async def test_group_replies_keep_their_prompt_snapshot(live: Live) -> None:
    boss = await admin(live)
    alice = await live.register()
    ann, bo = await alice.character("Ann"), await alice.character("Bo")
    group = await alice.group("g", [ann, bo])
    r = await alice.request("POST", f"/api/groups/{group['id']}/messages", json={"content": "hi"})
    assert r.status_code == 200, r.text
    replies = r.json()["replies"]
    assert {reply["character_id"] for reply in replies} == {ann["id"], bo["id"]}
    names = {ann["id"]: "Ann", bo["id"]: "Bo"}
    for reply in replies:
        r = await boss.request("GET", f"/api/admin/messages/{reply['id']}/prompt")
        assert r.status_code == 200, r.text
        snapshot = r.json()
        assert snapshot["model"] == reply["model"]
        system = snapshot["messages"][0]
        assert system["role"] == "system" and names[reply["character_id"]] in system["content"]
        assert any(m["content"].endswith("hi") for m in snapshot["messages"][1:])


async def test_no_snapshots_when_days_is_zero(db_url: str, fake: Any) -> None:
    settings = make_settings(
        db_url, fake.base_url, admin_username="root", admin_password="rootpassword",
        prompt_snapshot_days=0,
    )
    async with live_server(settings) as live:
        alice = await live.register()
        mira = await alice.character("Mira")
        await chat(alice, mira["id"])
        assert _rows(live)["prompt_snapshots"] == 0
