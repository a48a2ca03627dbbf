"""A minimal HTTP/1.1 server on trio + h11: keep-alive, streamed bodies, disconnect detection.

Each connection serves requests one after another. While a handler answers, a watcher task reads
the socket: end-of-file (or a reset) means the client went away, and the handler's cancel scope is
cancelled so it stops sending at once. A failed send does the same.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus

import h11
import trio

MAX_BODY_BYTES = 16 * 1024 * 1024
_READ_SIZE = 65536
_SERVER_HEADER = (b"server", b"fastnpc-fake-openrouter")
_DIRECT_WRITES = os.name == "posix"
"""Whether ``os.write`` works on a socket's file descriptor (see `Responder._send_nowait`)."""


@dataclass
class Request:
    """One parsed request with its whole body."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    """Lower-cased header names; the last value wins."""
    body: bytes


class Responder:
    """Writes the response to one request; a vanished client cancels the handler."""

    def __init__(self, conn: h11.Connection, stream: trio.SocketStream) -> None:
        self._conn = conn
        self._stream = stream
        self._fd = stream.socket.fileno() if _DIRECT_WRITES else -1
        self._unsent = b""
        self._scope: trio.CancelScope | None = None
        self.status: int | None = None
        self.disconnected = False
        self.aborted = False
        self._completing_write = False
        self._chunked = False
        self.on_complete: Callable[[], None] | None = None
        """Called right before the write that completes the response."""

    @property
    def headers_sent(self) -> bool:
        """Whether the status line and headers went out."""
        return self.status is not None

    def client_gone(self) -> None:
        """The client closed its side: unless the response is already complete, that is a
        disconnect, and the handler is cancelled."""
        if self._completing_write:
            return  # everything was handed to the kernel; a close now is the client being done
        self._disconnect()

    def _disconnect(self) -> None:
        self.disconnected = True
        if self._scope is not None:
            self._scope.cancel()

    def _send_nowait(self, data: bytes) -> bool:
        """Hand ``data`` to the kernel without waiting; False if part of it is left for `flush`.

        The write goes straight to the (non-blocking) socket: a streamed chunk nearly always
        fits in the send buffer, and `trio.SocketStream.send_all` would add a reschedule of the
        task (every trio send is a full checkpoint) and several layers of context managers
        around the system call. Nothing else writes to the socket meanwhile: a response's
        writes are sequential. A failed write means the client is gone: the handler is
        cancelled and the data dropped, like every later write.
        """
        if not data or self.disconnected:
            return True
        if self._fd < 0:
            self._unsent = data
            return False
        try:
            sent = os.write(self._fd, data)
        except BlockingIOError:
            sent = 0
        except OSError:  # what trio would report as BrokenResourceError
            self._disconnect()
            return True
        if sent == len(data):
            return True
        self._unsent = data[sent:]
        return False

    async def flush(self) -> None:
        """Send what `write_nowait` left over, waiting for the socket to take it."""
        data, self._unsent = self._unsent, b""
        if not data or self.disconnected:
            return
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._disconnect()
            await trio.lowlevel.checkpoint()  # delivers the cancellation

    async def _send(self, data: bytes) -> None:
        if self.disconnected:
            return
        if not self._send_nowait(data):
            await self.flush()
        elif self.disconnected:
            await trio.lowlevel.checkpoint()  # this write failed: deliver the cancellation

    def _head(self, status: int, headers: Sequence[tuple[str, str]]) -> bytes:
        encoded = [(k.encode(), v.encode()) for k, v in headers]
        encoded.append(_SERVER_HEADER)
        response = h11.Response(status_code=status, headers=encoded, reason=_reason(status))
        self.status = status
        # h11 frames a body without content-length as chunked for HTTP/1.1 clients; its chunk
        # writer is stateless, so body chunks can be framed here, much cheaper than h11.Data.
        self._chunked = self._conn.their_http_version == b"1.1" and not any(
            k == "content-length" for k, _ in headers
        )
        return self._conn.send(response) or b""

    def _frame(self, data: bytes) -> bytes:
        if self._chunked:
            return b"%x\r\n%b\r\n" % (len(data), data)
        return self._conn.send(h11.Data(data=data)) or b""

    def _completing(self) -> None:
        self._completing_write = True
        if self.on_complete is not None:
            self.on_complete()

    async def start(self, status: int, headers: Sequence[tuple[str, str]]) -> None:
        """Send the status line and headers (chunked body unless content-length is given)."""
        await self._send(self._head(status, headers))

    async def write(self, data: bytes) -> None:
        """Send part of the body."""
        if data:
            await self._send(self._frame(data))

    def write_nowait(self, data: bytes) -> bool:
        """Send part of the body without waiting (usable outside the handler's task).

        False if the socket took only part of it: then `flush` must be awaited before anything
        else is sent. A write to a vanished client cancels the handler, as `write` does.
        """
        return self._send_nowait(self._frame(data)) if data else True

    async def finish(self, data: bytes = b"") -> None:
        """Send the last part of the body and its end in one write; the connection stays open.

        ``on_complete`` runs just before, so whoever reads the response sees the completion
        already recorded.
        """
        payload = self._frame(data) if data else b""
        payload += self._conn.send(h11.EndOfMessage()) or b""
        self._completing()
        await self._send(payload)

    async def respond(
        self,
        status: int,
        body: bytes,
        *,
        content_type: str = "application/json",
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Send a complete response with a content-length, in one write."""
        all_headers = [("content-type", content_type), ("content-length", str(len(body)))]
        payload = self._head(status, [*all_headers, *headers])
        payload += self._conn.send(h11.Data(data=body)) or b""
        payload += self._conn.send(h11.EndOfMessage()) or b""
        self._completing()
        await self._send(payload)

    def abort(self) -> None:
        """Close the connection once the handler returns, whatever was sent."""
        self.aborted = True


Handler = Callable[[Request, Responder], Awaitable[None]]
ErrorHook = Callable[[Exception], None]


async def serve_connection(
    stream: trio.SocketStream, handler: Handler, on_error: ErrorHook
) -> None:
    """Serve requests on one connection until either side closes it."""
    conn = h11.Connection(h11.SERVER)
    async with stream:
        while True:
            try:
                request = await _read_request(conn, stream)
            except (h11.RemoteProtocolError, _BodyTooLarge) as exc:
                await _reject(conn, stream, exc)
                return
            if request is None:
                return
            responder = Responder(conn, stream)
            async with trio.open_nursery() as nursery:
                responder._scope = nursery.cancel_scope
                nursery.start_soon(_watch_for_disconnect, conn, stream, responder)
                await _run_handler(handler, request, responder, on_error)
                nursery.cancel_scope.cancel()
            if responder.disconnected or responder.aborted or conn.our_state is not h11.DONE:
                return
            if conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()


async def _run_handler(
    handler: Handler, request: Request, responder: Responder, on_error: ErrorHook
) -> None:
    try:
        await handler(request, responder)
    except Exception as exc:  # a bug in one answer must not take the whole fake down
        on_error(exc)
        if responder.headers_sent:
            responder.abort()
        else:
            await responder.respond(500, b'{"error":{"code":500,"message":"fake upstream bug"}}')


async def _watch_for_disconnect(
    conn: h11.Connection, stream: trio.SocketStream, responder: Responder
) -> None:
    while True:
        try:
            data = await stream.receive_some(_READ_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            responder.client_gone()
            return
        conn.receive_data(data)  # a pipelined next request; h11 buffers it


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


class _BodyTooLarge(Exception):
    pass


async def _next_event(conn: h11.Connection, stream: trio.SocketStream) -> object:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        try:
            if conn.they_are_waiting_for_100_continue:
                continue_ = h11.InformationalResponse(status_code=100, headers=[])
                await stream.send_all(conn.send(continue_) or b"")
            data = await stream.receive_some(_READ_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        conn.receive_data(data)


async def _read_request(conn: h11.Connection, stream: trio.SocketStream) -> Request | None:
    event = await _next_event(conn, stream)
    if not isinstance(event, h11.Request):
        return None  # ConnectionClosed between requests
    body = bytearray()
    while True:
        part = await _next_event(conn, stream)
        if isinstance(part, h11.Data):
            body += part.data
            if len(body) > MAX_BODY_BYTES:
                raise _BodyTooLarge
        elif isinstance(part, h11.EndOfMessage):
            break
        else:
            return None
    target = event.target.decode("latin-1")
    path, _, query = target.partition("?")
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers}
    return Request(event.method.decode("ascii"), path, query, headers, bytes(body))


async def _reject(conn: h11.Connection, stream: trio.SocketStream, exc: Exception) -> None:
    if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    status = 413 if isinstance(exc, _BodyTooLarge) else 400
    body = b'{"error":{"code":%d,"message":"bad HTTP request"}}' % status
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    try:
        response = h11.Response(
            status_code=status, headers=[*headers, _SERVER_HEADER], reason=_reason(status)
        )
        data = conn.send(response)
        await stream.send_all((data or b"") + (conn.send(h11.Data(data=body)) or b""))
    except (h11.LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
        return
