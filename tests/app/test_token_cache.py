"""The token cache of the chat hot path keeps revocation immediate: a token revoked in any
process (logout, password change, disabling, account deletion) is refused by the very next
chat request, also in a process that has it cached, and that request stores nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import func, select

from app.services.auth import hash_token
from storage.schema import messages
from tests.app.harness import (
    Live,
    Session,
    admin_session,
    live_server,
    login,
    settings_with_admin,
)

Revoke = Callable[[Live, Session], Awaitable[None]]


async def _logout(live: Live, alice: Session) -> None:
    r = await Session(live, alice.token, alice.user).request("POST", "/api/auth/logout")
    assert r.status_code == 204


async def _change_password(live: Live, alice: Session) -> None:
    other = Session(live, (await login(live, "alice", "password123")).json()["token"], {})
    body = {"current_password": "password123", "new_password": "newpassword1"}
    r = await other.request("POST", "/api/me/password", json=body)
    assert r.status_code == 204, r.text


async def _disable(live: Live, alice: Session) -> None:
    boss = await admin_session(live)
    r = await boss.request("PATCH", f"/api/admin/users/{alice.user['id']}", json={"disabled": True})
    assert r.status_code == 200, r.text


async def _delete_account(live: Live, alice: Session) -> None:
    r = await Session(live, alice.token, alice.user).request(
        "DELETE", "/api/me", json={"password": "password123"}
    )
    assert r.status_code == 204, r.text


REVOCATIONS: dict[str, Revoke] = {
    "logout": _logout,
    "password_change": _change_password,
    "disable": _disable,
    "delete_account": _delete_account,
}


@asynccontextmanager
async def _two_processes(db_url: str, fake: Any) -> AsyncIterator[tuple[Live, Live]]:
    """Two app instances (each with its own token cache) sharing one database."""
    async with live_server(settings_with_admin(db_url, fake.base_url)) as first:
        async with live_server(settings_with_admin(db_url, fake.base_url)) as second:
            yield first, second


async def _chat(session: Session, character: dict[str, Any]) -> int:
    r = await session.request(
        "POST", f"/api/characters/{character['id']}/chat", json={"content": "hello"}
    )
    return r.status_code


def _user_messages(live: Live) -> int:
    with live.services.db.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(messages).where(messages.c.role == "user")
            ).scalar_one()
        )


@pytest.mark.parametrize("how", list(REVOCATIONS))
async def test_revoked_elsewhere_is_refused_by_the_next_chat(
    db_url: str, fake: Any, how: str
) -> None:
    async with _two_processes(db_url, fake) as (first, second):
        alice = await first.register("alice", "password123")
        character = await alice.character("Mira")
        on_second = Session(second, alice.token, alice.user)
        assert hash_token(alice.token) not in second.services.auth.cache  # issued by first
        assert await _chat(on_second, character) == 200  # resolved from the database, cached
        assert await _chat(on_second, character) == 200  # from the cache, confirmed
        assert hash_token(alice.token) in second.services.auth.cache

        await REVOCATIONS[how](first, alice)  # the other process revokes
        stored = _user_messages(second)

        assert await _chat(on_second, character) == 401
        assert _user_messages(second) == stored  # refused before anything was stored
        r = await on_second.request("GET", "/api/me")
        assert r.status_code == 401


@pytest.mark.parametrize("how", list(REVOCATIONS))
async def test_revoked_here_is_refused_by_the_next_chat(
    db_url: str, fake: Any, how: str
) -> None:
    async with live_server(settings_with_admin(db_url, fake.base_url)) as live:
        alice = await live.register("alice", "password123")
        assert hash_token(alice.token) in live.services.auth.cache  # issued here
        character = await alice.character("Mira")
        assert await _chat(alice, character) == 200
        assert await _chat(alice, character) == 200

        await REVOCATIONS[how](live, alice)
        stored = _user_messages(live)

        # this process dropped the entry at once
        assert hash_token(alice.token) not in live.services.auth.cache
        assert await _chat(alice, character) == 401
        assert _user_messages(live) == stored


async def test_a_cached_token_still_checks_the_quota_first(db_url: str, fake: Any) -> None:
    async with live_server(settings_with_admin(db_url, fake.base_url)) as live:
        alice = await live.register("alice", "password123")
        character = await alice.character("Mira")
        assert await _chat(alice, character) == 200  # cached from here on
        boss = await admin_session(live)
        r = await boss.request(
            "PATCH", f"/api/admin/users/{alice.user['id']}", json={"monthly_token_quota": 1}
        )
        assert r.status_code == 200
        stored = _user_messages(live)
        r = await alice.request(
            "POST", f"/api/characters/{character['id']}/chat", json={"content": "hi"}
        )
        assert r.status_code == 429 and r.json()["error"]["code"] == "quota_exceeded"
        assert _user_messages(live) == stored
        # usage of the earlier reply was recorded by its save transaction
        r = await alice.request("GET", "/api/me/usage")
        assert r.status_code == 200 and r.json()["quota"]["used"] > 0
