"""Three `fastnpc serve` processes sharing one database (PostgreSQL when configured) and the
machine's Redis work as one service: a reply started on one is followed from the others and
resumed with `Last-Event-ID`; the LLM limits hold across them; a process killed with SIGKILL
mid-reply leaves followers an `error`, its partial reply stored `interrupted`, and its LLM
slots back within the lease."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from llm.fake import FakeUpstream
from tests.app.cliproc import Server, cli_env, serving
from tests.app.harness import SSE, Numbered, delta_text, until_deltas
from tests.dbutil import DB_KINDS, temp_database_url
from tests.fakeupstream import start_fake
from tests.redisutil import REDIS_URL, redis_prefix

LEASE = 3  # seconds: generation rows and LLM slots of a dead process come back after this


@asynccontextmanager
async def _service(
    tmp_path: Path, fake: FakeUpstream, processes: int = 3
) -> AsyncIterator[list[Server]]:
    async with (
        temp_database_url(DB_KINDS[-1], tmp_path) as db_url,
        redis_prefix() as prefix,
        AsyncExitStack() as stack,
    ):
        env = cli_env(
            FASTNPC_DATABASE_URL=db_url,
            OPENROUTER_API_KEY="test-key",
            FASTNPC_OPENROUTER_BASE_URL=fake.base_url,
            FASTNPC_REDIS_URL=REDIS_URL,
            FASTNPC_REDIS_PREFIX=prefix,
            FASTNPC_LLM_MAX_PER_USER="2",
            FASTNPC_LLM_QUEUE_TIMEOUT="60",
            FASTNPC_LLM_MAX_RETRIES="0",
            FASTNPC_GENERATION_LEASE_SECONDS=str(LEASE),
            FASTNPC_LLM_SLOT_LEASE_SECONDS=str(LEASE),
            FASTNPC_SPOOL_DIR=str(tmp_path / "spool"),
            FASTNPC_SHUTDOWN_GRACE="2",
        )
        # the first one migrates the database; the others find it ready
        servers = [await stack.enter_async_context(serving([], env))]
        for _ in range(processes - 1):
            servers.append(await stack.enter_async_context(serving([], env)))
        yield servers


class Client:
    def __init__(self, http: httpx.AsyncClient, token: str) -> None:
        self.http = http
        self.token = token

    def headers(self, **more: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **more}

    async def json(self, method: str, url: str, **kwargs: Any) -> Any:
        r = await self.http.request(method, url, headers=self.headers(), **kwargs)
        assert r.is_success, r.text
        return r.json()

    @asynccontextmanager
    async def stream(
        self, method: str, url: str, body: Any = None, last_id: int | None = None
    ) -> AsyncIterator[SSE]:
        headers = self.headers(Accept="text/event-stream")
        if last_id is not None:
            headers["Last-Event-ID"] = str(last_id)
        async with self.http.stream(method, url, json=body, headers=headers) as response:
            assert response.status_code == 200, await response.aread()
            sse = SSE(response)
            try:
                yield sse
            finally:
                await sse.aclose()


async def _register(http: httpx.AsyncClient, server: Server, name: str) -> Client:
    r = await http.post(
        f"{server.base_url}/api/auth/register", json={"username": name, "password": "password123"}
    )
    assert r.status_code == 201, r.text
    return Client(http, r.json()["token"])


pytestmark = pytest.mark.skipif(
    "postgresql" not in DB_KINDS, reason="the multi-process test runs on PostgreSQL (CI sets it)"
)


async def test_three_processes_are_one_service(tmp_path: Path, nursery: trio.Nursery) -> None:
    fake = await start_fake(nursery, first_token_delay=0.05, tokens=40, tokens_per_second=40)
    async with _service(tmp_path, fake) as (a, b, c), httpx.AsyncClient(timeout=60) as http:
        alice = await _register(http, a, "alice")
        mira = await alice.json("POST", f"{a.base_url}/api/characters", json={"name": "Mira"})
        chat = f"/api/characters/{mira['id']}/chat"

        # 1. a reply streaming on A, followed from B; C's follower drops halfway and resumes
        with trio.fail_after(60):
            async with alice.stream("POST", a.base_url + chat, {"content": "hi"}) as on_a:
                head = await until_deltas(on_a, 2)
                async with trio.open_nursery() as followers:
                    from_b: list[Numbered] = []

                    async def follow_b() -> None:
                        async with alice.stream("GET", f"{b.base_url}{chat}/stream") as sse:
                            from_b.extend([event async for event in sse])

                    followers.start_soon(follow_b)
                    async with alice.stream("GET", f"{c.base_url}{chat}/stream") as sse:
                        c_head = await until_deltas(sse, 5)
                    dropped_at = c_head[-1][0]
                    async with alice.stream(
                        "GET", f"{c.base_url}{chat}/stream", last_id=dropped_at
                    ) as sse:
                        c_rest = [event async for event in sse]
                original = head + [event async for event in on_a]
        assert original[-1][1] == "done" and from_b[-1][1] == "done" and c_rest[-1][1] == "done"
        assert delta_text(from_b) == delta_text(original)
        assert c_rest[0][0] > dropped_at
        assert delta_text(c_head) + delta_text(c_rest) == delta_text(
            original
        )  # exactly the missing events
        ids = [i for i, _, _ in c_head + c_rest]
        assert ids == sorted(set(ids))

        # 2. at most 2 LLM calls of one user at once, whichever processes they land on
        characters = [
            await alice.json("POST", f"{a.base_url}/api/characters", json={"name": f"C{i}"})
            for i in range(6)
        ]
        fake.reset()
        replies: list[dict[str, Any]] = []

        async def send(server: Server, character: dict[str, Any]) -> None:
            url = f"{server.base_url}/api/characters/{character['id']}/chat"
            replies.append(await alice.json("POST", url, json={"content": "[[fake:tokens=10]]"}))

        with trio.fail_after(60):
            async with trio.open_nursery() as senders:
                for i, character in enumerate(characters):
                    senders.start_soon(send, (a, b, c)[i % 3], character)
        assert len(replies) == 6 and all(r["reply"]["status"] == "complete" for r in replies)
        assert fake.requests_total == 6
        assert fake.max_active == 2

        # 3. SIGKILL of A mid-reply: followers get `error`, the partial reply is stored
        # `interrupted`, and A's LLM slot comes back within the lease
        ivo = await alice.json("POST", f"{a.base_url}/api/characters", json={"name": "Ivo"})
        ivo_chat = f"/api/characters/{ivo['id']}/chat"
        slow = {"content": "[[fake:tokens=400]][[fake:tps=20]] tell me everything"}
        followed: dict[str, list[Numbered]] = {}
        with trio.fail_after(60):
            async with alice.stream("POST", a.base_url + ivo_chat, slow) as on_a:
                await until_deltas(on_a, 3)
                sent_before = fake.chunks_sent
                async with trio.open_nursery() as followers:

                    async def follow(name: str, server: Server) -> None:
                        async with alice.stream("GET", f"{server.base_url}{ivo_chat}/stream") as s:
                            followed[name] = [event async for event in s]

                    followers.start_soon(follow, "b", b)
                    followers.start_soon(follow, "c", c)
                    await fake.wait_for(lambda: fake.chunks_sent >= sent_before + 10)
                    a.process.send_signal(signal.SIGKILL)
                    killed_at = trio.current_time()
                    await a.process.wait()
        for events in followed.values():
            assert events[-1][1] == "error" and events[-1][2]["code"] == "interrupted"
            assert delta_text(events) == delta_text(followed["b"]) and delta_text(events)
        page = await alice.json("GET", f"{b.base_url}{ivo_chat}/messages")
        last = page["items"][-1]
        assert last["role"] == "assistant" and last["status"] == "interrupted"
        assert last["content"] == delta_text(followed["b"])
        # A held one of alice's 2 slots: two calls at once again, within the lease
        fake.reset()
        with trio.fail_after(30):
            async with trio.open_nursery() as senders:
                senders.start_soon(send, b, characters[0])
                senders.start_soon(send, c, characters[1])
                await fake.wait_for(lambda: fake.active == 2)
                assert trio.current_time() - killed_at < LEASE + 3
