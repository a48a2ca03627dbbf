"""Cheap SSE streams for the load driver: raw HTTP/1.1 and one epoll loop, timing and counts.

One driver process reads up to 1,000 streams of 100 deltas each, on a 2-core machine that also
runs the server and the fake upstream. Through httpx on trio that cost ~145 µs of driver CPU
per delta, and raw trio sockets still ~60 µs (one task wake-up per delta), so the stream
scenarios use plain sockets: connect before the measured window, send one request each with
``Connection: close``, then read every response in one ``select.epoll`` loop (in a worker
thread, so the trio side keeps sampling RSS). The body is de-chunked by hand, split on blank
lines, and only ``delta`` payloads (to count characters) and the terminal ``error`` are
parsed as JSON.
"""

from __future__ import annotations

import json
import select
import socket
import time
from dataclasses import dataclass

READ_SIZE = 65536
BATCH_SECONDS = 0.005
"""The read loop naps this long after each round so one wake-up serves many streams; arrival
times are therefore known to within ~5 ms (TTFD is seconds; inter-delta gaps are 20+ ms)."""


@dataclass
class StreamResult:
    """What one request observed; times are ``time.monotonic()`` values."""

    started: float
    status: int = 0
    first_event: float | None = None  # any SSE event (FastNPC: the stored user message)
    first_delta: float | None = None
    last_delta: float | None = None
    max_gap: float = 0.0
    deltas: int = 0
    chars: int = 0
    ended: float | None = None
    terminal: str | None = None  # "done" | "error" | None (stream cut short)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.terminal == "done"

    @property
    def latency(self) -> float | None:
        return None if self.ended is None else self.ended - self.started

    @property
    def time_to_first_event(self) -> float | None:
        return None if self.first_event is None else self.first_event - self.started

    @property
    def time_to_first_delta(self) -> float | None:
        return None if self.first_delta is None else self.first_delta - self.started

    def fail(self, reason: str) -> None:
        """Record a failure (the first one wins) and the time it was seen."""
        if self.error is None:
            self.error = reason
        if self.ended is None:
            self.ended = time.monotonic()


def _field(block: bytes, name: bytes) -> bytes | None:
    start = block.find(name)
    if start < 0:
        return None
    start += len(name)
    end = block.find(b"\n", start)
    return block[start : end if end >= 0 else len(block)].strip()


class SSECounter:
    """Feeds decoded body bytes; counts deltas and characters, times them, notes the end."""

    def __init__(self, result: StreamResult) -> None:
        self.result = result
        self._buffer = b""

    def feed(self, data: bytes, now: float) -> None:
        """Account for every complete event in ``data`` (received at ``now``)."""
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *blocks, self._buffer = (self._buffer + data).split(b"\n\n")
        result = self.result
        if blocks and result.first_event is None:
            result.first_event = now
        for block in blocks:
            event = _field(block, b"event:")
            if event == b"delta":
                if result.last_delta is None:
                    result.first_delta = now
                else:
                    result.max_gap = max(result.max_gap, now - result.last_delta)
                result.last_delta = now
                result.deltas += 1
                data_line = _field(block, b"data:")
                if data_line:
                    result.chars += len(json.loads(data_line).get("text", ""))
            elif event == b"done":
                result.terminal = "done"
            elif event == b"error":
                result.terminal = "error"
                result.fail(f"error event: {(_field(block, b'data:') or b'')[:200]!r}")

    @property
    def finished(self) -> bool:
        return self.result.terminal is not None


class ChunkedDecoder:
    """Incremental ``Transfer-Encoding: chunked`` decoder (trailers are ignored)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._need = 0  # payload bytes left in the current chunk
        self._skip = 0  # CRLF bytes left after a chunk's payload
        self.done = False

    def feed(self, data: bytes) -> bytes:
        """Decode what ``data`` completes; keep the rest for the next call."""
        buffer, pos, out = self._buffer + data, 0, []
        while pos < len(buffer) and not self.done:
            if self._need:
                piece = buffer[pos : pos + self._need]
                out.append(piece)
                pos += len(piece)
                self._need -= len(piece)
                if not self._need:
                    self._skip = 2
            elif self._skip:
                taken = min(self._skip, len(buffer) - pos)
                pos += taken
                self._skip -= taken
            else:
                end = buffer.find(b"\r\n", pos)
                if end < 0:
                    break
                size = int(buffer[pos:end].split(b";", 1)[0], 16)
                pos = end + 2
                if size == 0:
                    self.done = True
                self._need = size
        self._buffer = buffer[pos:]
        return b"".join(out)


def build_request(host: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    """An HTTP/1.1 POST with ``Connection: close``."""
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class _Exchange:
    """One request/response on its own socket: head, then a (chunked) SSE body."""

    def __init__(self, sock: socket.socket, request: bytes) -> None:
        self.sock = sock
        self.request = request
        self.result = StreamResult(started=0.0)
        self._head = b""
        self._body: bytes | None = None  # set once the head is parsed
        self._decoder: ChunkedDecoder | None = None
        self._counter = SSECounter(self.result)

    def start(self, now: float) -> None:
        self.result.started = now
        self.sock.sendall(self.request)
        self.sock.setblocking(False)

    def feed(self, data: bytes, now: float) -> bool:
        """Take received bytes (``b""`` at EOF); return True when this exchange is over."""
        result, eof = self.result, not data
        if self._body is None:
            self._head += data
            if b"\r\n\r\n" not in self._head:
                if eof:
                    result.fail("connection closed before the response head")
                return eof
            head, _, data = self._head.partition(b"\r\n\r\n")
            status_line, *lines = head.split(b"\r\n")
            result.status = int(status_line.split(b" ", 2)[1])
            headers = {
                name.strip().lower(): value.strip().lower()
                for name, _, value in (line.partition(b":") for line in lines)
            }
            if headers.get(b"transfer-encoding") == b"chunked":
                self._decoder = ChunkedDecoder()
            self._body = b""
        if result.status != 200:
            self._body += data
            if eof:
                result.fail(f"http {result.status}: {self._body[:200]!r}")
            return eof
        payload = self._decoder.feed(data) if self._decoder else data
        if payload:
            self._counter.feed(payload, now)
        if not eof and not self._counter.finished and not (self._decoder and self._decoder.done):
            return False
        result.ended = now
        if result.terminal is None:
            result.fail("stream ended without a terminal event")
        return True


def open_connections(host: str, port: int, count: int) -> list[socket.socket]:
    """Connect ``count`` sockets (blocking; before the measured window)."""
    socks = []
    for _ in range(count):
        sock = socket.create_connection((host, port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.append(sock)
    return socks


def run_exchanges(
    socks: list[socket.socket], requests: list[bytes], deadline: float
) -> list[StreamResult]:
    """Send every request, then read every response with one epoll loop (call in a thread).

    ``deadline`` is a ``time.monotonic()`` value; streams still open then fail as timed out.
    """
    exchanges = {
        sock.fileno(): _Exchange(sock, request)
        for sock, request in zip(socks, requests, strict=True)
    }
    poller = select.epoll(len(exchanges) + 1)
    try:
        open_fds = set()
        for fd, exchange in exchanges.items():
            try:
                exchange.start(time.monotonic())
            except OSError as exc:
                exchange.result.fail(f"{type(exc).__name__}: {exc}")
                continue
            poller.register(fd, select.EPOLLIN)
            open_fds.add(fd)
        while open_fds:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            events = poller.poll(min(remaining, 1.0))
            now = time.monotonic()
            for fd, _ in events:
                exchange = exchanges[fd]
                try:
                    data = exchange.sock.recv(READ_SIZE)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    exchange.result.fail(f"{type(exc).__name__}: {exc}")
                    data, over = b"", True
                else:
                    over = exchange.feed(data, now)
                if over:
                    poller.unregister(fd)
                    open_fds.discard(fd)
            time.sleep(BATCH_SECONDS)
        for fd in open_fds:
            exchanges[fd].result.fail("timed out")
    finally:
        poller.close()
        for sock in socks:
            sock.close()
    return [exchange.result for exchange in exchanges.values()]
