"""HTTP/1.1 for the LLM client: an ``httpx.AsyncBaseTransport`` of our own over trio streams.

A streamed completion is a chunked body of hundreds of small HTTP chunks, one per SSE event.
httpx's default transport (httpcore over h11) hands every chunk up through h11's event parser and
five async-iterator layers, ~30 µs of CPU per chunk, and one read can take only one chunk. Here
one read of a response body returns every body byte received so far, de-chunked in one pass, so
a read spaced out by ``llm.pacing`` takes every event that arrived meanwhile with one wake-up,
and the cost per chunk is a few slices of a buffer.

Only public APIs are used: httpx's transport interface (``handle_async_request`` returning an
``httpx.Response`` over an ``httpx.AsyncByteStream``), trio's streams, the standard ``ssl``
module. What it does: keep-alive connections per origin (newest reused first, an idle one
dropped after ``keepalive_expiry`` or when the server has closed it), at most
``max_connections`` open, TLS for ``https``, ``Content-Length``, chunked and close-delimited
bodies, 1xx responses skipped. It has no proxies, no HTTP/2, no timeouts of its own (the LLM
client bounds every await with cancel scopes) and never retries: a body not read to its end is
closed with its connection, which is how the upstream learns the caller went away.

Failures are httpx's: ``ConnectError`` (connect or TLS handshake), ``WriteError``, ``ReadError``,
``RemoteProtocolError`` (a malformed response, or the connection closed mid-message),
``LocalProtocolError`` (a header that cannot be sent), ``UnsupportedProtocol``.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from typing import Final

import httpx
import trio

# A response's extensions carry this key (True) when reads return everything received so far.
BULK_READS: Final = "fastnpc.bulk_reads"

READ_SIZE = 65536
MAX_HEAD = 64 * 1024  # status line and headers
MAX_LINE = 4096  # a chunk-size or trailer line

_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([1-9][0-9][0-9])(?: (.*))?")
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_FORBIDDEN_IN_VALUE = re.compile(rb"[\x00\r\n]")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")

Origin = tuple[str, str, int]
Headers = list[tuple[bytes, bytes]]

_NETWORK_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


class _Connection:
    """One TCP (or TLS) connection and what has been received on it but not yet consumed."""

    __slots__ = ("origin", "stream", "socket", "buffer", "idle_since")

    def __init__(
        self, origin: Origin, stream: trio.abc.Stream, socket: trio.socket.SocketType
    ) -> None:
        self.origin = origin
        self.stream = stream
        self.socket = socket
        self.buffer = bytearray()
        self.idle_since = 0.0

    async def receive(self) -> bytes | bytearray:
        """The next bytes from the peer (``b""`` at end of stream); ``httpx.ReadError``."""
        try:
            return await self.stream.receive_some(READ_SIZE)
        except _NETWORK_ERRORS as exc:
            raise httpx.ReadError(f"{type(exc).__name__}: {exc}") from exc

    def reusable_after_idle(self, now: float, expiry: float) -> bool:
        # An idle HTTP/1.1 connection that is readable has been closed by the server (or sent
        # something unasked): either way it cannot carry another request.
        return now - self.idle_since < expiry and not self.socket.is_readable()

    def close(self) -> None:
        # Forceful and synchronous (no TLS close_notify): nothing can cancel it half-way, so a
        # cancelled caller never leaves a socket open.
        self.socket.close()


class H1Transport(httpx.AsyncBaseTransport):
    """HTTP/1.1 to the LLM provider over pooled keep-alive connections (see module doc)."""

    def __init__(
        self,
        *,
        max_connections: int,
        max_keepalive_connections: int,
        keepalive_expiry: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._ssl_context = ssl_context
        self._max_keepalive = max_keepalive_connections
        self._expiry = keepalive_expiry
        self._slots = trio.Semaphore(max_connections)
        self._idle: dict[Origin, list[_Connection]] = {}
        self._idle_count = 0
        self._in_use: set[_Connection] = set()
        self._closed = False

    @property
    def idle_connections(self) -> int:
        return self._idle_count

    @property
    def active_connections(self) -> int:
        return len(self._in_use)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("the transport is closed")
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
        host = url.host
        port = url.port or (443 if scheme == "https" else 80)
        sent = _request_head(request.method, url.raw_path, request.headers.raw)
        content = await request.aread()
        await self._slots.acquire()
        connection: _Connection | None = None
        try:
            connection = await self._checkout((scheme, host, port))
            try:
                await connection.stream.send_all(sent + content if content else sent)
            except _NETWORK_ERRORS as exc:
                raise httpx.WriteError(f"{type(exc).__name__}: {exc}") from exc
            head = await _read_response(connection, request.method)
        except BaseException:
            if connection is not None:
                self._in_use.discard(connection)
                connection.close()
            self._slots.release()
            raise
        return httpx.Response(
            status_code=head.status,
            headers=head.headers,
            stream=_Body(self, connection, head),
            extensions={
                "http_version": head.version,
                "reason_phrase": head.reason,
                BULK_READS: True,
            },
        )

    async def _checkout(self, origin: Origin) -> _Connection:
        """A live idle connection to ``origin`` (the newest), else a new one; marked in use."""
        idle = self._idle.get(origin)
        now = trio.current_time()
        while idle:
            connection = idle.pop()
            self._idle_count -= 1
            if connection.reusable_after_idle(now, self._expiry):
                self._in_use.add(connection)
                return connection
            connection.close()
        connection = await self._connect(origin)
        self._in_use.add(connection)
        return connection

    async def _connect(self, origin: Origin) -> _Connection:
        scheme, host, port = origin
        try:
            tcp = await trio.open_tcp_stream(host, port)
        except OSError as exc:
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}") from exc
        if scheme == "http":
            return _Connection(origin, tcp, tcp.socket)
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()
        tls = trio.SSLStream(tcp, self._ssl_context, server_hostname=host, https_compatible=True)
        try:
            await tls.do_handshake()
        except BaseException as exc:
            tcp.socket.close()
            if isinstance(exc, _NETWORK_ERRORS):
                raise httpx.ConnectError(f"TLS handshake failed: {exc}") from exc
            raise
        return _Connection(origin, tls, tcp.socket)

    def release(self, connection: _Connection, reusable: bool) -> None:
        """A response's body is done with ``connection``: keep it for the next request to its
        origin when ``reusable`` (and within the keep-alive bound), else close it."""
        self._in_use.discard(connection)
        try:
            if reusable and not self._closed and self._idle_count < self._max_keepalive:
                connection.idle_since = trio.current_time()
                self._idle.setdefault(connection.origin, []).append(connection)
                self._idle_count += 1
            else:
                connection.close()
        finally:
            self._slots.release()

    async def aclose(self) -> None:
        self._closed = True
        connections = [c for idle in self._idle.values() for c in idle] + list(self._in_use)
        self._idle.clear()
        self._idle_count = 0
        self._in_use.clear()
        for connection in connections:
            connection.close()


def _request_head(method: str, target: bytes, headers: Headers) -> bytes:
    parts = [method.encode("ascii"), b" ", target or b"/", b" HTTP/1.1\r\n"]
    for name, value in headers:
        if not _TOKEN.fullmatch(name) or _FORBIDDEN_IN_VALUE.search(value):
            raise httpx.LocalProtocolError(f"header {name!r} cannot be sent")
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


# How a response body is delimited.
_NONE, _LENGTH, _CHUNKED, _CLOSE = range(4)


@dataclass(frozen=True, slots=True)
class _Head:
    """A final response's status line and headers, and how its body is delimited."""

    status: int
    version: bytes
    reason: bytes
    headers: Headers
    framing: int
    length: int  # Content-Length (framing _LENGTH)
    keep_alive: bool  # whether the connection may carry another request after the body


async def _read_response(connection: _Connection, method: str) -> _Head:
    """Read up to a final response's body (1xx responses are skipped)."""
    while True:
        status, version, reason, headers = await _read_head(connection)
        if status == 101:
            raise httpx.RemoteProtocolError("unexpected 101 Switching Protocols")
        if status >= 200:
            break
    keep_alive = version == b"HTTP/1.1"
    transfer_encoding = b""
    lengths: set[bytes] = set()
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"connection":
            if b"close" in {token.strip().lower() for token in value.split(b",")}:
                keep_alive = False
        elif lowered == b"transfer-encoding":
            transfer_encoding = value.strip().lower()
        elif lowered == b"content-length":
            lengths.update(part.strip() for part in value.split(b","))
    length = 0
    if method == "HEAD" or status in (204, 304):
        framing = _NONE
    elif transfer_encoding:
        chunked = transfer_encoding.rsplit(b",", 1)[-1].strip() == b"chunked"
        framing = _CHUNKED if chunked else _CLOSE
    elif lengths:
        if len(lengths) != 1 or not (digits := lengths.pop()).isdigit():
            raise httpx.RemoteProtocolError("invalid Content-Length")
        length = int(digits)
        framing = _LENGTH if length else _NONE
    else:
        framing = _CLOSE
    keep_alive = keep_alive and framing != _CLOSE
    return _Head(status, version, reason, headers, framing, length, keep_alive)


async def _read_head(connection: _Connection) -> tuple[int, bytes, bytes, Headers]:
    buffer = connection.buffer
    searched = 0
    while (end := buffer.find(b"\r\n\r\n", searched)) < 0:
        if len(buffer) > MAX_HEAD:
            raise httpx.RemoteProtocolError("response head too large")
        searched = max(0, len(buffer) - 3)
        data = await connection.receive()
        if not data:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        buffer += data
    lines = bytes(buffer[:end]).split(b"\r\n")
    del buffer[: end + 4]
    matched = _STATUS_LINE.fullmatch(lines[0])
    if matched is None:
        raise httpx.RemoteProtocolError(f"malformed status line {lines[0][:100]!r}")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            raise httpx.RemoteProtocolError(f"malformed header line {line[:100]!r}")
        headers.append((name, value.strip(b" \t")))
    version = b"HTTP/1." + matched.group(1)
    return int(matched.group(2)), version, matched.group(3) or b"", headers


# Where a chunked body's parser is between reads.
_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)


class _Body(httpx.AsyncByteStream):
    """A response body: each ``__anext__`` returns every body byte received so far (reading
    the network only when none is), de-chunked. At its end the connection goes back to the
    transport; ``aclose`` before the end closes it."""

    __slots__ = ("_transport", "_connection", "_framing", "_left", "_state", "_reusable")

    def __init__(self, transport: H1Transport, connection: _Connection, head: _Head) -> None:
        self._transport = transport
        self._connection: _Connection | None = connection
        self._framing = head.framing
        self._left = head.length  # Content-Length: bytes to come; chunked: of the current chunk
        self._state = _SIZE if head.framing == _CHUNKED else _DATA
        self._reusable = head.keep_alive

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        connection = self._connection
        if connection is None:
            raise StopAsyncIteration
        if self._framing == _NONE:
            self._finish()
            raise StopAsyncIteration
        buffer = connection.buffer
        while True:
            data = self._take(buffer) if buffer else b""
            if self._state == _DONE:
                self._finish()
                if data:
                    return data
                raise StopAsyncIteration
            if data:
                return data
            received = await connection.receive()
            if not received:
                if self._framing == _CLOSE:
                    self._state = _DONE
                    continue
                raise httpx.RemoteProtocolError(
                    "peer closed connection without sending complete message body"
                )
            buffer += received

    def _take(self, buffer: bytearray) -> bytes:
        if self._framing == _CHUNKED:
            return self._take_chunked(buffer)
        if self._framing == _CLOSE:
            data = bytes(buffer)
            buffer.clear()
            return data
        count = min(self._left, len(buffer))
        data = bytes(buffer[:count])
        del buffer[:count]
        self._left -= count
        if not self._left:
            self._state = _DONE
        return data

    def _take_chunked(self, buffer: bytearray) -> bytes:
        parts: list[bytes | bytearray] = []
        position = 0
        size = len(buffer)
        state = self._state
        while position < size:
            if state == _DATA:
                count = min(self._left, size - position)
                parts.append(buffer[position : position + count])
                position += count
                self._left -= count
                if self._left:
                    break
                state = _DATA_END
            elif state == _DATA_END:
                if size - position < 2:
                    break
                if buffer[position : position + 2] != b"\r\n":
                    raise httpx.RemoteProtocolError("chunk data not followed by CRLF")
                position += 2
                state = _SIZE
            else:  # _SIZE or _TRAILER: a line
                end = buffer.find(b"\r\n", position)
                if end < 0:
                    if size - position > MAX_LINE:
                        raise httpx.RemoteProtocolError("chunk header line too long")
                    break
                line = bytes(buffer[position:end])
                position = end + 2
                if state == _TRAILER:
                    if not line:
                        state = _DONE
                        break
                    continue
                digits = line.split(b";", 1)[0].strip(b" \t")
                if not _HEX.fullmatch(digits):
                    raise httpx.RemoteProtocolError(f"malformed chunk size {line[:40]!r}")
                self._left = int(digits, 16)
                state = _DATA if self._left else _TRAILER
        self._state = state
        del buffer[:position]
        return b"".join(parts)

    def _finish(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            # bytes beyond the end of the message: the server broke framing; do not reuse
            reusable = self._reusable and not connection.buffer
            self._transport.release(connection, reusable)

    async def aclose(self) -> None:
        if self._framing == _NONE:  # nothing to read: done with, as at the end of a body
            self._finish()
            return
        # (a body read to its end has released its connection already)
        connection, self._connection = self._connection, None
        if connection is not None:  # closed before its end: the connection goes with it
            self._transport.release(connection, False)
