"""The shared HTTP client's two reliances on private shapes (pinned in pyproject.toml): the
pool's bookkeeping override (httpcore) and h11's receive buffer under a response (httpx,
httpcore, h11). If an upgrade changes either, these tests fail, instead of the client silently
losing its linear pool or its read coalescing."""

from __future__ import annotations

from collections.abc import Sized
from typing import Any

import httpcore
import httpx
import pytest
import trio

from llm import LLMSettings, make_http_client
from llm.fake import FakeUpstream
from llm.http import LinearConnectionPool, LLMTransport, h11_receive_buffer
from tests.fakeupstream import start_fake

BODY: dict[str, Any] = {
    "model": "m",
    "stream": True,
    "messages": [{"role": "user", "content": "hi"}],
}
AUTH = {"Authorization": "Bearer k"}


@pytest.fixture
async def upstream(nursery: trio.Nursery) -> FakeUpstream:
    return await start_fake(nursery, first_token_delay=0.05, tokens=5, tokens_per_second=0)


async def test_h11_receive_buffer_is_found_under_a_response(upstream: FakeUpstream) -> None:
    async with make_http_client(LLMSettings()) as http:
        request = http.build_request(
            "POST", upstream.base_url + "/chat/completions", json=BODY, headers=AUTH
        )
        response = await http.send(request, stream=True)
        try:
            received = h11_receive_buffer(response)  # raises InternalsChanged if not
            assert isinstance(received, Sized)
            chunks = [chunk async for chunk in response.aiter_raw()]
        finally:
            await response.aclose()
    assert b"[DONE]" in b"".join(chunks)
    assert len(received) == 0  # everything h11 received was handed over


async def test_the_pool_override_is_what_assigns_connections(
    upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The private method is still httpcore's hook: every request start and end goes
    # through our version of it.
    stock = httpcore.AsyncConnectionPool.__dict__["_assign_requests_to_connections"]
    assert callable(stock)
    calls: list[int] = []
    ours = LinearConnectionPool._assign_requests_to_connections

    def counting(self: LinearConnectionPool) -> list[httpcore.AsyncConnectionInterface]:
        calls.append(len(self._requests))
        return ours(self)

    monkeypatch.setattr(LinearConnectionPool, "_assign_requests_to_connections", counting)
    streams = 12
    async with make_http_client(LLMSettings(max_concurrency=4)) as http:
        transport = http._transport  # type: ignore[attr-defined]
        assert isinstance(transport, LLMTransport)
        assert isinstance(transport.pool, LinearConnectionPool)

        all_open = trio.Event()

        async def one() -> None:
            url = upstream.base_url + "/chat/completions"
            async with http.stream("POST", url, json=BODY, headers=AUTH) as response:
                await all_open.wait()
                assert b"[DONE]" in await response.aread()

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                for _ in range(streams):
                    nursery.start_soon(one)
                await upstream.wait_for(lambda: upstream.requests_total == streams)
                all_open.set()  # none was queued behind another
        assert len(calls) >= 2 * streams  # each request's start and end
        # keep-alive bound (httpcore's): what stays open is within max_keepalive_connections
        assert len(transport.pool.connections) <= streams
        r = await http.post(upstream.base_url + "/chat/completions", json=BODY, headers=AUTH)
        assert r.status_code == 200


async def test_transport_errors_are_httpx_errors() -> None:
    async with make_http_client(LLMSettings()) as http:
        with trio.fail_after(10), pytest.raises(httpx.ConnectError):
            await http.get("http://127.0.0.1:9/")  # discard port: nothing listens
