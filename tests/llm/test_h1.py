"""The LLM client's own HTTP/1.1 transport (``llm.h1``): framing, keep-alive, failures."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

import httpx
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from llm.h1 import BULK_READS, H1Transport

Handler = Callable[[trio.SocketStream, "Server"], Awaitable[None]]


@dataclass
class Server:
    """A raw TCP server on 127.0.0.1 whose ``handler`` writes exactly the bytes under test."""

    handler: Handler
    port: int = 0
    accepted: int = 0
    requests: list[bytes] = field(default_factory=list)
    closed_by_peer: trio.Event = field(default_factory=trio.Event)
    finished: trio.Event = field(default_factory=trio.Event)  # a connection was closed

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/x"

    async def read_request(self, stream: trio.SocketStream, buffer: bytearray) -> bytes | None:
        """One request (head + Content-Length body) from ``stream``; None at EOF."""
        while b"\r\n\r\n" not in buffer:
            data = await stream.receive_some(65536)
            if not data:
                self.closed_by_peer.set()
                return None
            buffer += data
        end = buffer.index(b"\r\n\r\n") + 4
        head = bytes(buffer[:end])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        while len(buffer) < end + length:
            buffer += await stream.receive_some(65536)
        request = bytes(buffer[: end + length])
        del buffer[: end + length]
        self.requests.append(request)
        return request

    async def serve(self, stream: trio.SocketStream) -> None:
        self.accepted += 1
        async with stream:
            await self.handler(stream, self)
        self.finished.set()


@pytest.fixture
async def start(nursery: trio.Nursery) -> Callable[[Handler], Awaitable[Server]]:
    async def starter(handler: Handler) -> Server:
        server = Server(handler)
        listeners = await nursery.start(partial(trio.serve_tcp, server.serve, 0, host="127.0.0.1"))
        server.port = listeners[0].socket.getsockname()[1]
        return server

    return starter


def transport(**kwargs: int) -> H1Transport:
    return H1Transport(
        max_connections=kwargs.get("max_connections", 10),
        max_keepalive_connections=kwargs.get("max_keepalive", 10),
        keepalive_expiry=30.0,
    )


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


OK_CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def answering(*responses: bytes) -> Handler:
    """Answer each request on a connection with the next response; then wait for EOF."""

    async def handler(stream: trio.SocketStream, server: Server) -> None:
        buffer = bytearray()
        for response in responses:
            if await server.read_request(stream, buffer) is None:
                return
            await stream.send_all(response)
        await server.read_request(stream, buffer)

    return handler


async def test_keep_alive_reuses_one_connection(
    start: Callable[[Handler], Awaitable[Server]],
) -> None:
    body = OK_CHUNKED + chunked(b"data: a\n\n", b"data: b\n\n")
    server = await start(answering(body, body, body))
    async with httpx.AsyncClient(transport=transport()) as client:
        for _ in range(3):
            response = await client.post(server.url, content=b'{"x": 1}')
            assert response.status_code == 200
            assert response.content == b"data: a\n\ndata: b\n\n"
            assert response.http_version == "HTTP/1.1"
            assert response.extensions[BULK_READS] is True
    assert server.accepted == 1
    assert server.requests[0].startswith(b"POST /v1/x HTTP/1.1\r\n")
    assert b"\r\ncontent-length: 8\r\n" in server.requests[0].lower()
    assert server.requests[0].endswith(b'\r\n\r\n{"x": 1}')


async def test_one_read_returns_every_chunk_received(
    start: Callable[[Handler], Awaitable[Server]],
) -> None:
    sent = trio.Event()

    async def handler(stream: trio.SocketStream, server: Server) -> None:
        await server.read_request(stream, bytearray())
        await stream.send_all(OK_CHUNKED + b"3\r\none\r\n")
        await sent.wait()
        # three chunks in one segment: the client's next read must return all of them
        await stream.send_all(b"3\r\ntwo\r\n5\r\nthree\r\n4\r\nfour\r\n")
        await stream.send_all(b"0\r\n\r\n")
        await server.read_request(stream, bytearray())

    server = await start(handler)
    async with httpx.AsyncClient(transport=transport()) as client:
        async with client.stream("GET", server.url) as response:
            reads = response.aiter_raw()
            assert await reads.__anext__() == b"one"
            sent.set()
            second = await reads.__anext__()
            while len(second) < len(b"twothreefour"):
                second += await reads.__anext__()  # TCP may split it; never joins past it
            assert second == b"twothreefour"
            assert [rest async for rest in reads] == []


@dataclass
class Exchange:
    """What a client saw of one response sent in given pieces."""

    body: bytes
    reused: bool


async def exchange_in_pieces(pieces: list[bytes]) -> Exchange:
    """Send a response in ``pieces`` (each its own write, the client reading in between)
    and read it with the transport; a second request tells whether the connection was kept."""

    async def handler(stream: trio.SocketStream, server: Server) -> None:
        buffer = bytearray()
        await server.read_request(stream, buffer)
        for piece in pieces:
            await stream.send_all(piece)
            await trio.testing.wait_all_tasks_blocked()
        if await server.read_request(stream, buffer) is not None:
            await stream.send_all(b"HTTP/1.1 204 No Content\r\n\r\n")
            await server.read_request(stream, buffer)

    async with trio.open_nursery() as nursery:
        server = Server(handler)
        listeners = await nursery.start(partial(trio.serve_tcp, server.serve, 0, host="127.0.0.1"))
        server.port = listeners[0].socket.getsockname()[1]
        async with httpx.AsyncClient(transport=transport()) as client:
            response = await client.get(server.url)
            assert response.status_code == 200
            again = await client.get(server.url)
            assert again.status_code == (204 if server.accepted == 1 else 200)
        nursery.cancel_scope.cancel()
    return Exchange(response.content, server.accepted == 1)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False) if b > a]


@settings(max_examples=60, deadline=None)
@given(
    parts=st.lists(st.binary(min_size=1, max_size=40), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
    extension=st.sampled_from([b"", b";name=value"]),
    trailers=st.sampled_from([b"", b"X-Trailer: 1\r\n"]),
)
def test_chunked_bodies_in_any_pieces(
    parts: list[bytes], cuts: list[int], extension: bytes, trailers: bytes
) -> None:
    body = b"".join(b"%x%s\r\n%s\r\n" % (len(p), extension, p) for p in parts)
    wire = OK_CHUNKED + body + b"0\r\n" + trailers + b"\r\n"
    seen = trio.run(exchange_in_pieces, split(wire, cuts))
    assert seen.body == b"".join(parts)
    assert seen.reused


@settings(max_examples=30, deadline=None)
@given(
    payload=st.binary(min_size=1, max_size=200),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=8),
)
def test_content_length_bodies_in_any_pieces(payload: bytes, cuts: list[int]) -> None:
    wire = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload)
    seen = trio.run(exchange_in_pieces, split(wire, cuts))
    assert seen.body == payload
    assert seen.reused


async def test_informational_responses_are_skipped() -> None:
    wire = b"HTTP/1.1 100 Continue\r\n\r\n" + OK_CHUNKED + chunked(b"x")
    seen = await exchange_in_pieces([wire])
    assert seen.body == b"x" and seen.reused


async def test_bytes_past_the_message_end_spoil_the_connection() -> None:
    seen = await exchange_in_pieces([OK_CHUNKED + chunked(b"x") + b"junk"])
    assert seen.body == b"x" and not seen.reused


@pytest.mark.parametrize(
    "wire",
    [
        OK_CHUNKED + b"zz\r\nabc\r\n0\r\n\r\n",  # chunk size not hex
        OK_CHUNKED + b"3\r\nabcXY0\r\n\r\n",  # chunk data not followed by CRLF
        b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabc",
        b"HTTP/9.9 200 OK\r\n\r\n",
    ],
)
async def test_malformed_responses_are_protocol_errors(
    start: Callable[[Handler], Awaitable[Server]], wire: bytes
) -> None:
    server = await start(answering(wire))
    async with httpx.AsyncClient(transport=transport()) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(server.url)
        await server.closed_by_peer.wait()  # the broken connection was closed, not kept


@pytest.mark.parametrize(
    "wire",
    [
        OK_CHUNKED + b"5\r\nab",  # cut inside a chunk
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nContent-",  # cut inside the head
        b"",  # closed without a response
    ],
)
async def test_a_connection_closed_mid_message_is_a_protocol_error(
    start: Callable[[Handler], Awaitable[Server]], wire: bytes
) -> None:
    async def handler(stream: trio.SocketStream, server: Server) -> None:
        await server.read_request(stream, bytearray())
        await stream.send_all(wire)

    server = await start(handler)
    async with httpx.AsyncClient(transport=transport()) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(server.url)


async def test_a_close_delimited_body_ends_at_eof_and_is_not_reused(
    start: Callable[[Handler], Awaitable[Server]],
) -> None:
    async def handler(stream: trio.SocketStream, server: Server) -> None:
        await server.read_request(stream, bytearray())
        await stream.send_all(b"HTTP/1.1 200 OK\r\n\r\nuntil the end")

    server = await start(handler)
    async with httpx.AsyncClient(transport=transport()) as client:
        assert (await client.get(server.url)).content == b"until the end"
        assert (await client.get(server.url)).content == b"until the end"
    assert server.accepted == 2


async def test_connection_close_is_honoured(
    start: Callable[[Handler], Awaitable[Server]],
) -> None:
    wire = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    server = await start(answering(wire))
    async with httpx.AsyncClient(transport=transport()) as client:
        for _ in range(2):
            assert (await client.get(server.url)).content == b"ok"
    assert server.accepted == 2


async def test_an_idle_connection_the_server_closed_is_not_used(
    start: Callable[[Handler], Awaitable[Server]],
) -> None:
    wire = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    async def handler(stream: trio.SocketStream, server: Server) -> None:
        await server.read_request(stream, bytearray())
        await stream.send_all(wire)  # then closes: keep-alive ended by the server

    server = await start(handler)
    http = transport()
    async with httpx.AsyncClient(transport=http) as client:
        assert (await client.get(server.url)).content == b"ok"
        assert http.idle_connections == 1
        await server.finished.wait()  # on loopback its FIN has reached our socket by now
        assert (await client.get(server.url)).content == b"ok"  # no error: a new connection
    assert server.accepted == 2


async def test_closing_a_body_early_drops_its_connection(
    start: Callable[[Handler], Awaitable[Server]],
) -> None:
    async def handler(stream: trio.SocketStream, server: Server) -> None:
        await server.read_request(stream, bytearray())
        await stream.send_all(OK_CHUNKED + b"5\r\nfirst\r\n")
        await server.read_request(stream, bytearray())  # returns at the client's close

    server = await start(handler)
    http = transport()
    async with httpx.AsyncClient(transport=http) as client:
        async with client.stream("GET", server.url) as response:
            async for data in response.aiter_raw():
                assert data == b"first"
                break
        with trio.fail_after(5):
            await server.closed_by_peer.wait()
        assert http.idle_connections == 0 and http.active_connections == 0


async def test_headers_that_would_split_the_request_are_refused(
    start: Callable[[Handler], Awaitable[Server]],
) -> None:
    server = await start(answering())
    async with httpx.AsyncClient(transport=transport()) as client:
        with pytest.raises(httpx.LocalProtocolError):
            await client.get(server.url, headers={"X-Evil": "a\r\nInjected: 1"})
    assert server.accepted == 0


async def test_unreachable_and_unsupported_urls() -> None:
    async with httpx.AsyncClient(transport=transport()) as client:
        with trio.fail_after(10), pytest.raises(httpx.ConnectError):
            await client.get("http://127.0.0.1:9/")  # discard port: nothing listens
        with pytest.raises(httpx.UnsupportedProtocol):
            await client.get("ftp://127.0.0.1/")


async def test_at_most_max_connections_are_open(
    start: Callable[[Handler], Awaitable[Server]],
) -> None:
    release = trio.Event()

    async def handler(stream: trio.SocketStream, server: Server) -> None:
        buffer = bytearray()
        while await server.read_request(stream, buffer) is not None:
            await release.wait()
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    server = await start(handler)
    http = transport(max_connections=2)
    async with httpx.AsyncClient(transport=http) as client:
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(client.get, server.url)
            await trio.testing.wait_all_tasks_blocked()
            assert len(server.requests) == 2  # the third waits for a connection
            assert http.active_connections == 2
            release.set()
    assert len(server.requests) == 3
    assert server.accepted == 2


async def test_closing_the_transport_while_cancelled_closes_every_connection(
    start: Callable[[Handler], Awaitable[Server]],
) -> None:
    eofs = 0

    async def handler(stream: trio.SocketStream, server: Server) -> None:
        nonlocal eofs
        buffer = bytearray()
        await server.read_request(stream, buffer)
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        if await server.read_request(stream, buffer) is None:
            eofs += 1

    server = await start(handler)
    http = transport()
    client = httpx.AsyncClient(transport=http)
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(client.get, server.url)
    assert http.idle_connections == 3
    with trio.CancelScope() as scope:
        scope.cancel()
        await client.aclose()  # e.g. the service nursery cancelled at shutdown
    with trio.fail_after(5):
        while eofs < 3:
            await trio.testing.wait_all_tasks_blocked()
    assert http.idle_connections == 0
