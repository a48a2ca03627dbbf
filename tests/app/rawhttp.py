"""HTTP/1.1 over a raw trio socket, for tests about the connection itself (early answers,
keep-alive reuse, slow headers, malformed framing)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import trio


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


def port_of(base_url: str) -> int:
    return int(base_url.rsplit(":", 1)[1])


def request_head(method: str, path: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class RawConnection:
    """One client connection; `read_response` parses one response (Content-Length bodies)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    @classmethod
    async def open(cls, base_url: str) -> RawConnection:
        return cls(await trio.open_tcp_stream("127.0.0.1", port_of(base_url)))

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def _fill(self) -> bool:
        data = await self.stream.receive_some(65536)
        self.buffer += data
        return bool(data)

    async def read_response(self) -> RawResponse | None:
        """The next response, or None when the server closed (or reset) the connection first."""
        try:
            while b"\r\n\r\n" not in self.buffer:
                if not await self._fill():
                    assert self.buffer == b"", f"connection closed mid-response: {self.buffer!r}"
                    return None
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in header_lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            while len(self.buffer) < length:
                assert await self._fill(), "connection closed mid-body"
            body, self.buffer = self.buffer[:length], self.buffer[length:]
            return RawResponse(int(status_line.split(" ")[1]), headers, body)
        except trio.BrokenResourceError:  # reset by the server
            return None

    async def closed_by_server(self) -> bool:
        """True once the server has closed its side (EOF or reset) with nothing more sent."""
        try:
            return not await self._fill() and self.buffer == b""
        except trio.BrokenResourceError:
            return True

    async def aclose(self) -> None:
        await self.stream.aclose()
