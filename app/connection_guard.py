"""ASGI middleware at the Hypercorn boundary: after every response the connection is reusable
or closed, whatever the route, the status, and however much of the request body was read.

Why it is needed (Hypercorn 0.18's trio worker with quart-trio): when an app's response ends,
Hypercorn either starts the next keep-alive cycle (the request body was fully read) or closes the
socket (it was not). Both happen inside the app's final `send`. During that same call Hypercorn
delivers `http.disconnect` to the app, and quart-trio's receiver task answers it by cancelling
the handler's nursery, so the close (or the restart of the keep-alive idle timer) is cancelled
half-way: the socket stays open, the unread body fills the app's queue, Hypercorn's reader blocks
on it for good, the next request on the connection is never answered and, once the client
gives up, the socket sits in CLOSE-WAIT.

What the guard does, for every HTTP request:

- The final response message is sent shielded from cancellation (bounded by `close_timeout`),
  so Hypercorn's recycle-or-close always completes.
- If the response starts before the request body has been received: when the body has a
  `Content-Length` whose remainder is at most `drain_limit` bytes, the response's bytes are sent,
  the remainder is read and discarded (for at most `drain_timeout`) and only then is the
  response ended, so the connection stays usable; otherwise (larger or chunked) the response
  carries `Connection: close` and Hypercorn closes the connection after it.
- After the app returns, messages are received (and discarded) until `http.disconnect`, so
  nothing Hypercorn still has to deliver can block its reader.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    HTTPResponseBodyEvent,
    HTTPScope,
    Scope,
)

Message = Any  # an ASGI event (hypercorn.typing's TypedDicts)

DRAIN_LIMIT = 64 * 1024
DRAIN_TIMEOUT = 5.0
CLOSE_TIMEOUT = 5.0


class ConnectionGuard:
    """Wrap an ASGI app so that an early response never wedges its connection."""

    def __init__(
        self,
        app: ASGIFramework,
        *,
        drain_limit: int = DRAIN_LIMIT,
        drain_timeout: float = DRAIN_TIMEOUT,
        close_timeout: float = CLOSE_TIMEOUT,
    ) -> None:
        self.app = app
        self.drain_limit = drain_limit
        self.drain_timeout = drain_timeout
        self.close_timeout = close_timeout

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(self, _content_length(scope), receive, send)
        await self.app(scope, exchange.receive, exchange.send)
        await exchange.finish()


def _content_length(scope: HTTPScope) -> int | None:
    """The request body's length: its Content-Length, 0 without one, None if chunked."""
    length = 0
    for name, value in scope["headers"]:
        name = name.lower()
        if name == b"transfer-encoding":
            return None
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return None
    return length


class _Exchange:
    """One request/response: what has been received and how the response must end."""

    def __init__(
        self,
        guard: ConnectionGuard,
        expected: int | None,
        receive: ASGIReceiveCallable,
        send: ASGISendCallable,
    ) -> None:
        self._guard = guard
        self._receive = receive
        self._send = send
        self._expected = expected
        self._received = 0
        self._body_done = False
        self._disconnected = False
        self._drain = False
        self._ended = False
        self._lock = trio.Lock()  # the app and the drain may both be receiving

    async def _receive_one(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            if not message.get("more_body", False):
                self._body_done = True
        elif message["type"] == "http.disconnect":
            self._disconnected = True
            self._body_done = True
        return message

    async def receive(self) -> Message:
        """The app's `receive`; a disconnect the guard consumed is repeated to the app."""
        async with self._lock:
            if self._disconnected:
                return {"type": "http.disconnect"}
            return await self._receive_one()

    async def _discard_until(self, done: Callable[[], bool]) -> None:
        while not done():
            async with self._lock:
                if done():
                    return
                await self._receive_one()

    async def send(self, message: Message) -> None:
        """The app's `send`: decides how the response ends when the body is still arriving."""
        kind = message["type"]
        if kind == "http.response.start" and not self._body_done and self._expected != 0:
            remaining = None if self._expected is None else self._expected - self._received
            if remaining is not None and remaining <= self._guard.drain_limit:
                self._drain = True
            else:
                headers = [*message.get("headers", ()), (b"connection", b"close")]
                message = {**message, "headers": headers}
        if kind != "http.response.body" or message.get("more_body", False) or self._ended:
            await self._send_quietly(message)
            return
        self._ended = True
        guard = self._guard
        with trio.move_on_after(guard.drain_timeout + guard.close_timeout, shield=True):
            if self._drain and not self._body_done:
                body = message.get("body", b"")
                if body:
                    part: HTTPResponseBodyEvent = {
                        "type": "http.response.body",
                        "body": body,
                        "more_body": True,
                    }
                    await self._send_quietly(part)
                with trio.move_on_after(guard.drain_timeout):
                    await self._discard_until(lambda: self._body_done)
                end: HTTPResponseBodyEvent = {
                    "type": "http.response.body",
                    "body": b"",
                    "more_body": False,
                }
                message = end
            await self._send_quietly(message)

    async def _send_quietly(self, message: Message) -> None:
        try:
            await self._send(message)
        except trio.BusyResourceError:
            # Hypercorn is closing the socket in another task (its close does not take the
            # send lock): the peer is gone or going, there is nobody to answer.
            pass

    async def finish(self) -> None:
        """Take whatever Hypercorn still delivers for this request, up to `http.disconnect`."""
        if not self._ended:
            return  # Hypercorn answers 500 itself and closes the stream after we return
        with trio.move_on_after(self._guard.close_timeout):
            await self._discard_until(lambda: self._disconnected)
