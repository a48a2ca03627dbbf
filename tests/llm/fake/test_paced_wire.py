"""Paced streams over real sockets: written from the timer task, one HTTP chunk per write, and
still whole and in order when the socket takes only part of a write."""

from __future__ import annotations

import json
import os

import httpx
import pytest
import trio

from llm.fake import FakeUpstream
from llm.fake import http11 as http11_module
from llm.fake.content import reply_text, seed_for
from tests.llm.fake.wire import AUTH, chat, content_of, parse_events


async def raw_response(fake: FakeUpstream, version: str) -> bytes:
    """Everything the fake sends for one streamed request (it closes after the response)."""
    body = json.dumps(chat()).encode()
    head = (
        f"POST /v1/chat/completions HTTP/{version}\r\nHost: x\r\nAuthorization: Bearer k\r\n"
        f"Connection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    stream = await trio.open_tcp_stream("127.0.0.1", fake.port)
    received = bytearray()
    async with stream:
        await stream.send_all(head.encode() + body)
        with trio.fail_after(10):
            while data := await stream.receive_some(65536):
                received += data
    return bytes(received)


def http_chunks(body: bytes) -> list[bytes]:
    """Split a chunked body into its chunks (checking the framing and the last chunk)."""
    chunks: list[bytes] = []
    while True:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            assert rest == b"\r\n"
            return chunks
        chunks.append(rest[:size])
        assert rest[size : size + 2] == b"\r\n"
        body = rest[size + 2 :]


def expected_reply(tokens: int) -> str:
    messages = chat()["messages"]
    return reply_text(messages, tokens * 4, seed_for(messages))


async def test_each_paced_write_is_one_http_chunk_of_whole_events(upstream: FakeUpstream) -> None:
    upstream.behaviour.tokens = 8
    upstream.behaviour.tokens_per_second = 40
    head, _, body = (await raw_response(upstream, "1.1")).partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    chunks = http_chunks(body)
    *content, last = [c for c in chunks if c.startswith(b"data: ")]
    # Normally one event per chunk; a late write (a loaded machine) carries the due ones together.
    assert 1 <= len(content) <= 8
    assert all(c.endswith(b"\n\n") for c in chunks)
    assert sum(c.count(b"data: ") for c in content) == 8
    assert content_of(parse_events(b"".join(chunks).decode())) == expected_reply(8)
    assert last == chunks[-1] and last.endswith(b"data: [DONE]\n\n")
    (record,) = upstream.requests
    assert record.chunks_sent == 8 and not record.disconnected


class ShortWrites:
    """Stands in for ``os`` in `llm.fake.http11`: of every three writes, the first takes half
    the bytes, the second none (a full socket), the third all."""

    name = os.name

    def __init__(self) -> None:
        self.calls = 0

    def write(self, fd: int, data: bytes) -> int:
        self.calls += 1
        if self.calls % 3 == 2:
            raise BlockingIOError
        if self.calls % 3 == 1:
            return os.write(fd, data[: max(1, len(data) // 2)])
        return os.write(fd, data)


@pytest.mark.parametrize("version", ["1.1", "1.0"])
async def test_a_stream_survives_short_writes(
    upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    short = ShortWrites()
    monkeypatch.setattr(http11_module, "os", short)
    flushes = 0
    flush = http11_module.Responder.flush

    async def counting_flush(self: http11_module.Responder) -> None:
        nonlocal flushes
        flushes += 1
        await flush(self)

    monkeypatch.setattr(http11_module.Responder, "flush", counting_flush)
    upstream.behaviour.tokens = 30
    upstream.behaviour.tokens_per_second = 300
    head, _, body = (await raw_response(upstream, version)).partition(b"\r\n\r\n")
    if version == "1.1":
        body = b"".join(http_chunks(body))
    assert content_of(parse_events(body.decode())) == expected_reply(30)
    assert body.endswith(b"data: [DONE]\n\n")
    assert short.calls > 10 and flushes > 5
    (record,) = upstream.requests
    assert record.chunks_sent == 30 and not record.disconnected
    assert (upstream.completed, upstream.disconnects) == (1, 0)


async def test_paced_stream_through_httpx(upstream: FakeUpstream) -> None:
    upstream.behaviour.tokens = 20
    upstream.behaviour.tokens_per_second = 200
    async with httpx.AsyncClient(base_url=upstream.base_url, headers=AUTH) as client:
        texts = []
        for _ in range(2):  # the second request reuses the connection
            response = await client.post("/chat/completions", json=chat())
            texts.append(content_of(parse_events(response.text)))
    assert texts == [expected_reply(20)] * 2
    assert upstream.connections_total == 1
    assert upstream.chunks_sent == 40
