"""The OpenRouter wire format of the fake upstream: streamed, non-streamed, auth, recording."""

from __future__ import annotations

import json
from functools import partial

import httpx
import pytest
import trio

from llm.fake import FakeUpstream
from llm.fake.content import reply_text, seed_for
from tests.llm.fake.wire import AUTH, chat, content_of, parse_events


async def test_stream_has_keepalives_chunks_finish_usage_and_done(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    upstream.behaviour.tokens = 6
    upstream.behaviour.usage_chunk_style = "empty_choices"
    response = await client.post("/chat/completions", json=chat())
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["x-generation-id"].startswith("gen-")
    events = parse_events(response.text)

    first_data = next(i for i, e in enumerate(events) if e.data is not None)
    assert first_data >= 1
    assert all(e.comment == "OPENROUTER PROCESSING" for e in events[:first_data])
    assert all(e.comment is None for e in events[first_data:])

    data = [e for e in events if e.data is not None]
    assert data[-1].data == "[DONE]"
    chunks = [e.json for e in data[:-1]]
    content, (finish, usage) = chunks[:-2], chunks[-2:]
    assert len(content) == 6
    for chunk in chunks:
        assert chunk["id"] == response.headers["x-generation-id"]
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["model"] == "test/model"
    assert all(len(c["choices"][0]["delta"]["content"]) == 4 for c in content)
    assert all(c["choices"][0]["finish_reason"] is None for c in content)
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert finish["choices"][0]["delta"]["content"] == ""
    assert usage["choices"] == []
    assert usage["usage"]["completion_tokens"] == 6
    assert usage["usage"]["total_tokens"] == (
        usage["usage"]["prompt_tokens"] + usage["usage"]["completion_tokens"]
    )
    assert usage["usage"]["cost"] > 0


async def test_reply_is_deterministic_in_character_and_has_multibyte_text(
    client: httpx.AsyncClient, upstream: FakeUpstream
) -> None:
    upstream.behaviour.tokens = 100
    first = content_of(parse_events((await client.post("/chat/completions", json=chat())).text))
    second = content_of(parse_events((await client.post("/chat/completions", json=chat())).text))
    other = content_of(
        parse_events((await client.post("/chat/completions", json=chat("Who are you?"))).text)
    )
    assert first == second != other
    assert len(first) == 400
    assert "Elara Voss" in first
    assert any(len(ch.encode()) > 1 for ch in first)
    assert first == reply_text(chat()["messages"], 400, seed_for(chat()["messages"]))


async def test_usage_chunk_style_empty_delta_choice_and_alternate(
    client: httpx.AsyncClient, upstream: FakeUpstream
) -> None:
    upstream.behaviour.usage_chunk_style = "empty_delta_choice"
    events = parse_events((await client.post("/chat/completions", json=chat())).text)
    usage = [e for e in events if e.data and e.data != "[DONE]"][-1].json
    assert usage["usage"]["completion_tokens"] == 20
    assert usage["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "finish_reason": None,
            "native_finish_reason": None,
            "logprobs": None,
        }
    ]

    upstream.behaviour.usage_chunk_style = "alternate"
    styles = set()
    for _ in range(2):
        events = parse_events((await client.post("/chat/completions", json=chat())).text)
        styles.add(len([e for e in events if e.data and e.data != "[DONE]"][-1].json["choices"]))
    assert styles == {0, 1}


async def test_max_tokens_cuts_with_finish_reason_length(client: httpx.AsyncClient) -> None:
    events = parse_events((await client.post("/chat/completions", json=chat(max_tokens=3))).text)
    chunks = [e.json for e in events if e.data and e.data != "[DONE]"]
    assert len(content_of(events)) == 12
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize("line_ending", ["\r\n", "\r"])
async def test_other_line_endings(
    client: httpx.AsyncClient, upstream: FakeUpstream, line_ending: str
) -> None:
    upstream.behaviour.line_ending = line_ending
    response = await client.post("/chat/completions", json=chat())
    assert (line_ending * 2 + "data: [DONE]" + line_ending * 2) in response.text
    assert "\n" not in response.text.replace("\r\n", "") or line_ending == "\r\n"
    assert len(content_of(parse_events(response.text))) == 80


async def test_split_utf8_writes_cut_a_character_across_http_chunks(
    client: httpx.AsyncClient, upstream: FakeUpstream
) -> None:
    upstream.behaviour.split_utf8 = True
    upstream.behaviour.tokens = 100
    pieces: list[bytes] = []
    async with client.stream("POST", "/chat/completions", json=chat()) as response:
        async for raw in response.aiter_raw():
            pieces.append(raw)
    whole = b"".join(pieces)
    assert len(content_of(parse_events(whole.decode()))) == 400
    undecodable = 0
    for piece in pieces:
        try:
            piece.decode()
        except UnicodeDecodeError:
            undecodable += 1
    assert undecodable > 0


async def test_non_stream_completion(client: httpx.AsyncClient, upstream: FakeUpstream) -> None:
    response = await client.post("/chat/completions", json=chat(stream=False))
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"] == response.headers["x-generation-id"]
    assert body["model"] == "test/model"
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    assert len(choice["message"]["content"]) == 80
    assert body["usage"]["completion_tokens"] == 20
    assert body["usage"]["cost"] == pytest.approx(
        (body["usage"]["prompt_tokens"] + 20) * upstream.behaviour.cost_per_token
    )
    (record,) = upstream.requests
    assert record.stream is False
    assert record.status == 200
    assert record.reply == choice["message"]["content"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic x"}])
async def test_missing_bearer_is_401(upstream: FakeUpstream, headers: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=upstream.base_url, headers=headers) as client:
        response = await client.post("/chat/completions", json=chat())
    assert response.status_code == 401
    assert response.json() == {"error": {"code": 401, "message": "No auth credentials found"}}
    assert upstream.requests[0].status == 401


async def test_root_path_alias_and_bad_requests(upstream: FakeUpstream) -> None:
    root = upstream.base_url.removesuffix("/v1")
    async with httpx.AsyncClient(base_url=root, headers=AUTH) as client:
        assert (await client.post("/chat/completions", json=chat(stream=False))).status_code == 200
        assert (await client.post("/v1/chat/completions", content=b"{nope")).status_code == 400
        empty = await client.post("/v1/chat/completions", json={"messages": []})
        assert empty.status_code == 400
        assert empty.json()["error"]["code"] == 400
        assert (await client.get("/v1/chat/completions")).status_code == 405
        assert (await client.get("/v1/nothing")).status_code == 404


async def test_sequential_requests_reuse_one_connection(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    for stream in (True, False, True):
        response = await client.post("/chat/completions", json=chat(stream=stream))
        assert response.status_code == 200
    assert upstream.connections_total == 1
    assert upstream.requests_total == 3


async def test_client_disconnect_is_recorded_and_sending_stops(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    upstream.behaviour.tokens = 10_000
    upstream.behaviour.tokens_per_second = 200
    async with client.stream("POST", "/chat/completions", json=chat()) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                break
    with trio.fail_after(5):
        await upstream.wait_for(lambda: upstream.disconnects == 1)
    (record,) = upstream.requests
    assert record.disconnected
    assert record.ended_at is not None and record.ended_at >= record.started_at
    assert 0 < record.chunks_sent < 10_000
    assert upstream.active == 0


async def test_max_active_counts_concurrent_requests(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    upstream.behaviour.first_token_delay = 60
    async with trio.open_nursery() as nursery:
        for i in range(5):
            nursery.start_soon(partial(client.post, "/chat/completions", json=chat(f"q {i}")))
        with trio.fail_after(5):
            await upstream.wait_for(lambda: upstream.active == 5)
        assert upstream.max_active == 5
        nursery.cancel_scope.cancel()
    with trio.fail_after(5):
        await upstream.wait_for(lambda: upstream.active == 0)
    assert upstream.max_active == 5
    assert upstream.disconnects == 5


async def test_recorded_request_fields(upstream: FakeUpstream, client: httpx.AsyncClient) -> None:
    body = chat(temperature=0.5)
    await client.post("/chat/completions", json=body, headers={"X-Title": "FastNPC"})
    (record,) = upstream.requests
    assert record.body == body
    assert record.messages == body["messages"]
    assert record.stream is True
    assert record.headers["x-title"] == "FastNPC"
    assert record.path == "/v1/chat/completions"
    assert record.chunks_sent == 20
    assert not record.disconnected
    assert record.ended_at is not None and record.ended_at >= record.started_at


async def test_server_stops_cleanly_with_a_stream_in_flight() -> None:
    async with trio.open_nursery() as outer:
        from tests.fakeupstream import start_fake

        fake = await start_fake(outer, first_token_delay=60)
        async with httpx.AsyncClient(base_url=fake.base_url, headers=AUTH) as client:
            async with client.stream("POST", "/chat/completions", json=chat()) as response:
                assert response.status_code == 200
                outer.cancel_scope.cancel()
                with pytest.raises(httpx.RemoteProtocolError):
                    async for _ in response.aiter_raw():
                        pass
    assert json.loads(json.dumps(fake.stats()))["connections_open"] == 0


async def raw_exchange(fake: FakeUpstream, version: str, until: bytes) -> bytes:
    body = json.dumps(chat()).encode()
    head = (
        f"POST /v1/chat/completions HTTP/{version}\r\nHost: x\r\nAuthorization: Bearer k\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    stream = await trio.open_tcp_stream("127.0.0.1", fake.port)
    async with stream:
        await stream.send_all(head.encode() + body)
        received = b""
        with trio.fail_after(5):
            while until not in received:
                data = await stream.receive_some(65536)
                if not data:
                    break
                received += data
    return received


async def test_closing_right_after_the_last_byte_is_not_a_disconnect(
    upstream: FakeUpstream,
) -> None:
    received = await raw_exchange(upstream, "1.1", until=b"\r\n0\r\n\r\n")
    assert received.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")
    with trio.fail_after(5):
        await upstream.wait_for(lambda: upstream.connections_open == 0)
    assert (upstream.completed, upstream.disconnects) == (1, 0)


async def test_http10_client_gets_an_unframed_stream(upstream: FakeUpstream) -> None:
    received = await raw_exchange(upstream, "1.0", until=b"no such marker")
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower()
    assert len(content_of(parse_events(body.decode()))) == 80
    assert body.endswith(b"data: [DONE]\n\n")
