"""A live FastNPC server for tests: real HTTP on 127.0.0.1 port 0, stopped at the end."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import trio
from argon2 import PasswordHasher
from pydantic import SecretStr

from app.factory import create_app
from app.server import serve
from app.settings import Settings
from app.sources import SourceSettings
from llm import LLMSettings

FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=256, parallelism=1)
# sources nobody answers (the discard port): tests that fetch pages use tests/fakesources.py
NO_SOURCES = SourceSettings(
    wikipedia_url="http://127.0.0.1:9/{lang}/w/api.php", baike_url="http://127.0.0.1:9", timeout=5
)


def make_settings(db_url: str, llm_base_url: str, **overrides: Any) -> Settings:
    llm_overrides = overrides.pop("llm", {})
    llm = LLMSettings(
        api_key=SecretStr("test-key"),
        base_url=llm_base_url,
        max_retries=1,
        **llm_overrides,
    )
    overrides.setdefault("spool_dir", None)  # tests that spool to disk name their directory
    overrides.setdefault("sources", NO_SOURCES)  # tests never reach the internet
    return Settings(database_url=db_url, llm=llm, shutdown_grace=5, **overrides)


@dataclass
class Live:
    base_url: str
    client: httpx.AsyncClient
    app: Any
    stop: trio.Event

    @property
    def services(self) -> Any:
        return self.app.extensions["services"]

    async def register(self, username: str = "alice", password: str = "password123") -> Session:
        r = await self.client.post(
            "/api/auth/register", json={"username": username, "password": password}
        )
        assert r.status_code == 201, r.text
        return Session(self, r.json()["token"], r.json()["user"])


@dataclass
class Session:
    live: Live
    token: str
    user: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return await self.live.client.request(method, path, headers=headers, **kwargs)

    async def character(self, name: str = "Mira", **profile: Any) -> dict[str, Any]:
        r = await self.request("POST", "/api/characters", json={"name": name, "profile": profile})
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    async def group(
        self, name: str, members: list[dict[str, Any]], **settings: Any
    ) -> dict[str, Any]:
        """A group of ``members`` (characters as returned by `character`); strategy ``all``
        unless ``settings`` say otherwise."""
        body = {"name": name, "character_ids": [m["id"] for m in members], "strategy": "all"}
        r = await self.request("POST", "/api/groups", json=body | settings)
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    @asynccontextmanager
    async def stream(
        self,
        path: str,
        body: Any = None,
        *,
        method: str = "POST",
        headers: dict[str, str] | None = None,
    ) -> AsyncIterator[SSE]:
        headers = {**self.headers, "Accept": "text/event-stream", **(headers or {})}
        async with self.live.client.stream(method, path, json=body, headers=headers) as response:
            sse = SSE(response)
            try:
                yield sse
            finally:
                await sse.aclose()


class SSE:
    """A strict reader of our SSE framing: every event has id, event and one data line.

    `async for event_id, name, data in sse` may be left and resumed; the underlying byte
    iterator is closed when the `Session.stream` block exits.
    """

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.pings = 0
        self._chunks = response.aiter_text()
        self._buffer = ""

    def __aiter__(self) -> SSE:
        return self

    async def __anext__(self) -> tuple[int, str, dict[str, Any]]:
        while True:
            while "\n\n" in self._buffer:
                block, self._buffer = self._buffer.split("\n\n", 1)
                if block.startswith(":"):
                    self.pings += 1
                    continue
                lines = block.split("\n")
                assert len(lines) == 3, block
                assert lines[0].startswith("id: ") and lines[1].startswith("event: "), block
                assert lines[2].startswith("data: "), block
                return int(lines[0][4:]), lines[1][7:], json.loads(lines[2][6:])
            try:
                self._buffer += await self._chunks.__anext__()
            except StopAsyncIteration:
                assert self._buffer == "", f"stream ended inside an event: {self._buffer!r}"
                raise StopAsyncIteration from None

    async def aclose(self) -> None:
        await self._chunks.aclose()  # type: ignore[attr-defined]

    async def collect(self) -> list[tuple[str, dict[str, Any]]]:
        out = []
        last_id = 0
        async for event_id, name, data in self:
            assert event_id > last_id
            last_id = event_id
            out.append((name, data))
        return out


Numbered = tuple[int, str, dict[str, Any]]


async def until_deltas(sse: SSE, count: int) -> list[Numbered]:
    """Read events until `count` `delta` events have come (the stream must not end before)."""
    seen: list[Numbered] = []
    async for event in sse:
        seen.append(event)
        if sum(1 for _, name, _ in seen if name == "delta") >= count:
            return seen
    raise AssertionError(f"stream ended after {seen}")


def delta_text(events: list[Numbered]) -> str:
    """The text of the `delta` events among `events`, joined."""
    return "".join(data["text"] for _, name, data in events if name == "delta")


@asynccontextmanager
async def live_server(settings: Settings) -> AsyncIterator[Live]:
    """Serve the app on an ephemeral port; shut it down gracefully on exit."""
    app = create_app(settings, hasher=FAST_HASHER)
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            lambda task_status: serve(
                app, "127.0.0.1:0", shutdown_trigger=stop.wait, task_status=task_status
            )
        )
        base_url = binds[0]
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            try:
                yield Live(base_url, client, app, stop)
            finally:
                stop.set()


ADMIN_USERNAME, ADMIN_PASSWORD = "root", "rootpassword"


def settings_with_admin(db_url: str, llm_base_url: str, **overrides: Any) -> Settings:
    """`make_settings` with the configured admin `root` that `admin_session` logs in as."""
    return make_settings(
        db_url,
        llm_base_url,
        admin_username=ADMIN_USERNAME,
        admin_password=ADMIN_PASSWORD,
        **overrides,
    )


async def login(live: Live, username: str, password: str) -> httpx.Response:
    return await live.client.post(
        "/api/auth/login", json={"username": username, "password": password}
    )


async def admin_session(live: Live) -> Session:
    """A session of the configured admin (see `settings_with_admin`)."""
    r = await login(live, ADMIN_USERNAME, ADMIN_PASSWORD)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["is_admin"] is True
    return Session(live, r.json()["token"], r.json()["user"])
