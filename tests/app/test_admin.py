"""Admin routes: access control, users and their flags, stats, LLM state and live limits,
background tasks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from app.services.redis_link import RedisLink, open_redis
from app.services.shared_limiter import SharedLLMLimiter
from app.settings import Settings
from tests.app.harness import (
    Live,
    admin_session,
    live_server,
    login,
    settings_with_admin,
)
from tests.redisutil import REDIS_URL, redis_prefix

ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/api/admin/users", None),
    ("PATCH", "/api/admin/users/1", {"disabled": True}),
    ("GET", "/api/admin/stats", None),
    ("GET", "/api/admin/llm", None),
    ("PUT", "/api/admin/llm/limits", {"max_concurrency": 3}),
    ("GET", "/api/admin/tasks", None),
]


@pytest.fixture
async def live(db_url: str, fake: Any) -> AsyncIterator[Live]:
    async with live_server(settings_with_admin(db_url, fake.base_url)) as server:
        yield server


admin = admin_session


async def test_admin_routes_are_forbidden_to_others(live: Live) -> None:
    alice = await live.register()
    for method, path, body in ROUTES:
        r = await live.client.request(method, path, json=body)
        assert r.status_code == 401, (method, path)
        assert r.json()["error"]["code"] == "unauthenticated"
        r = await alice.request(method, path, json=body)
        assert r.status_code == 403, (method, path)
        assert r.json()["error"]["code"] == "forbidden"
        # even with an invalid body, a non-admin learns nothing more than 403
        r = await alice.request(method, path, json={"bogus": 1} if body else None)
        assert r.status_code == 403, (method, path)
    assert (await live.services.admin.stats()).users == 2  # nothing was changed


async def test_users_with_counts_and_flags(live: Live) -> None:
    boss = await admin(live)
    alice = await live.register()
    bob = await live.register("bob")
    mira = await alice.character("Mira")
    bram = await alice.character("Bram")
    r = await alice.request("POST", f"/api/characters/{mira['id']}/chat", json={"content": "hi"})
    assert r.status_code == 200
    group = await alice.group("G", [mira, bram])
    r = await alice.request("POST", f"/api/groups/{group['id']}/messages", json={"content": "yo"})
    assert r.status_code == 200

    r = await boss.request("GET", "/api/admin/users")
    assert r.status_code == 200
    users = {u["username"]: u for u in r.json()["items"]}
    assert set(users) == {"root", "alice", "bob"}
    assert users["alice"]["characters"] == 2 and users["alice"]["messages"] == 2 + 3
    assert users["bob"]["characters"] == 0 and users["bob"]["messages"] == 0
    assert users["alice"]["is_admin"] is False and users["alice"]["disabled"] is False
    assert set(users["alice"]) == {
        "id",
        "username",
        "is_admin",
        "disabled",
        "created_at",
        "characters",
        "messages",
    }

    # disabling revokes the tokens at once; the right password then gets 403
    r = await boss.request("PATCH", f"/api/admin/users/{bob.user['id']}", json={"disabled": True})
    assert r.status_code == 200 and r.json()["disabled"] is True
    assert r.json()["username"] == "bob"
    assert (await bob.request("GET", "/api/me")).status_code == 401
    r = await login(live, "bob", "password123")
    assert r.status_code == 403 and r.json()["error"]["code"] == "account_disabled"
    r = await boss.request("PATCH", f"/api/admin/users/{bob.user['id']}", json={"disabled": False})
    assert r.json()["disabled"] is False
    assert (await login(live, "bob", "password123")).status_code == 200

    # promotion
    r = await boss.request("PATCH", f"/api/admin/users/{alice.user['id']}", json={"is_admin": True})
    assert r.json()["is_admin"] is True
    assert (await alice.request("GET", "/api/admin/stats")).status_code == 200

    for bad_id in ("999999", "nope"):
        r = await boss.request("PATCH", f"/api/admin/users/{bad_id}", json={"disabled": True})
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await boss.request("PATCH", f"/api/admin/users/{bob.user['id']}", json={"disabled": "x"})
    assert r.status_code == 400


async def test_stats(live: Live) -> None:
    boss = await admin(live)
    alice = await live.register()
    mira = await alice.character("Mira")
    bram = await alice.character("Bram")
    await alice.request("POST", f"/api/characters/{mira['id']}/chat", json={"content": "hi"})
    await alice.request(
        "POST", "/api/groups", json={"name": "G", "character_ids": [mira["id"], bram["id"]]}
    )
    r = await boss.request("GET", "/api/admin/stats")
    assert r.status_code == 200
    stats = r.json()
    assert {k: stats[k] for k in ("users", "characters", "messages", "groups", "memories")} == {
        "users": 2,
        "characters": 2,
        "messages": 2,
        "groups": 1,
        "memories": 0,
    }


async def test_llm_view_and_live_limits(live: Live, fake: Any) -> None:
    boss = await admin(live)
    alice = await live.register()
    mira = await alice.character("Mira")
    bram = await alice.character("Bram")
    r = await alice.request("POST", f"/api/characters/{mira['id']}/chat", json={"content": "hi"})
    assert r.status_code == 200
    view = (await boss.request("GET", "/api/admin/llm")).json()
    assert view["limiter"] == {"total": 64, "borrowed": 0, "waiting": 0}
    ((model, metrics),) = view["models"].items()
    assert metrics["calls"] >= 1 and metrics["errors"] == 0
    assert set(metrics) >= {
        "calls",
        "errors",
        "retries",
        "latency_ms",
        "first_token_ms",
        "prompt_tokens",
        "completion_tokens",
        "cost",
    }

    for bad in (0, 1001, "many"):
        r = await boss.request("PUT", "/api/admin/llm/limits", json={"max_concurrency": bad})
        assert r.status_code == 400
    r = await boss.request("PUT", "/api/admin/llm/limits", json={"max_concurrency": 1})
    assert r.status_code == 200 and r.json() == {"total": 1, "borrowed": 0, "waiting": 0}

    # one call holds the only slot...
    async with trio.open_nursery() as nursery:
        hung: list[int] = []

        async def hang() -> None:
            r = await alice.request(
                "POST",
                f"/api/characters/{mira['id']}/chat",
                json={"content": "[[fake:fault=hang]]"},
            )
            hung.append(r.status_code)

        nursery.start_soon(hang)
        with trio.fail_after(10):
            await fake.wait_for(lambda: fake.active == 1)
        view = (await boss.request("GET", "/api/admin/llm")).json()
        assert view["limiter"]["total"] == 1 and view["limiter"]["borrowed"] == 1
        tasks = (await boss.request("GET", "/api/admin/tasks")).json()
        assert tasks["generations"]["running"] == 1
        # ...raising the limit lets another call through at once, without a restart
        r = await boss.request("PUT", "/api/admin/llm/limits", json={"max_concurrency": 2})
        assert r.json()["total"] == 2
        r = await alice.request("POST", f"/api/characters/{bram['id']}/chat", json={"content": "x"})
        assert r.status_code == 200 and r.json()["reply"]["status"] == "complete"
        r = await alice.request("POST", f"/api/characters/{mira['id']}/chat/stop")
        assert r.json() == {"stopped": True}
    assert hung == [200]


async def test_tasks_shape(live: Live) -> None:
    boss = await admin(live)
    r = await boss.request("GET", "/api/admin/tasks")
    assert r.status_code == 200
    assert r.json() == {
        "memory": {"queued": 0, "running": 0, "done": 0, "failed": 0, "restarts": 0},
        "generations": {"running": 0},
    }


async def test_last_enabled_admin_cannot_be_disabled_or_demoted(live: Live) -> None:
    boss = await admin(live)
    path = f"/api/admin/users/{boss.user['id']}"
    for change in ({"disabled": True}, {"is_admin": False}):
        r = await boss.request("PATCH", path, json=change)
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "conflict"
    assert (await boss.request("GET", "/api/me")).json()["is_admin"] is True
    # with a second enabled admin, the first may step down; then the second is the last one
    alice = await live.register()
    alice_path = f"/api/admin/users/{alice.user['id']}"
    r = await boss.request("PATCH", alice_path, json={"is_admin": True})
    assert r.status_code == 200
    r = await boss.request("PATCH", path, json={"is_admin": False})
    assert r.status_code == 200 and r.json()["is_admin"] is False
    r = await alice.request("PATCH", alice_path, json={"disabled": True})
    assert r.status_code == 409
    assert (await alice.request("GET", "/api/admin/stats")).status_code == 200


async def test_a_configured_admin_password_must_be_one_login_accepts(live: Live) -> None:
    for password in ("short", "p" * 257):
        with pytest.raises(ValueError, match="8-256"):
            await live.services.auth.ensure_admin("root", password)
    assert (await login(live, "root", "rootpassword")).status_code == 200


async def test_with_redis_the_llm_view_and_live_limits_are_service_wide(
    db_url: str, fake: Any
) -> None:
    async with redis_prefix() as prefix, open_redis(REDIS_URL, prefix=prefix) as link:
        assert link is not None
        settings = settings_with_admin(
            db_url, fake.base_url, redis_url=REDIS_URL, redis_prefix=prefix
        )
        await llm_limits_with_redis(settings, link)


async def llm_limits_with_redis(settings: Settings, link: RedisLink) -> None:
    async with live_server(settings) as live:
        assert isinstance(live.services.limiter, SharedLLMLimiter)
        other = SharedLLMLimiter(link, 64, per_user=8, queue_timeout=10, lease=10)
        boss = await admin(live)
        async with other.slot("someone"):  # a call held by another process
            view = (await boss.request("GET", "/api/admin/llm")).json()
            assert view["limiter"] == {"total": 64, "borrowed": 1, "waiting": 0}
            r = await boss.request("PUT", "/api/admin/llm/limits", json={"max_concurrency": 5})
            assert r.json() == {"total": 5, "borrowed": 1, "waiting": 0}
            assert (await other.statistics())["total"] == 5
        alice = await live.register()
        mira = await alice.character("Mira")
        r = await alice.request("POST", f"/api/characters/{mira['id']}/chat", json={"content": "x"})
        assert r.status_code == 200 and r.json()["reply"]["status"] == "complete"
        view = (await boss.request("GET", "/api/admin/llm")).json()
        assert view["limiter"] == {"total": 5, "borrowed": 0, "waiting": 0}
        assert view["models"][settings.llm.model]["calls"] >= 1  # through the shared limiter
