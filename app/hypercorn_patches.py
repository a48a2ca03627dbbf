"""The two places where the project changes Hypercorn (0.17/0.18) internals, for want of a
configuration or public hook. `install` refuses to run against a Hypercorn whose methods are
not the ones it wraps, so an upgrade that changes them fails loudly at start, not silently.

1. JSON bodies for the errors Hypercorn answers itself, below the app. A request h11 cannot
   parse never reaches the ASGI app: headers larger than `h11_max_incomplete_size` get 431,
   malformed framing (`Content-Length: -1`, a bad request line) 400, an unknown
   Transfer-Encoding 501. `H11Protocol._send_error_response` sends those with an empty body;
   it is replaced by one that sends the API's JSON error shape.
2. A connection whose peer has closed (EOF or reset) is closed at once. The trio worker's
   `TCPServer._read_data` returns when the peer goes, but the connection's keep-alive timer
   keeps its task group, and so the socket, open (in CLOSE-WAIT) until `keep_alive_timeout`.
   The wrapper stops that timer and closes the socket when reading ends. (Hypercorn already
   treats the end of the peer's data as a disconnect, so nothing more can be answered.)
"""

from __future__ import annotations

import inspect
from http import HTTPStatus
from itertools import chain
from typing import Any

import h11
import orjson
import trio
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio.tcp_server import TCPServer

_ORIGINAL = H11Protocol._send_error_response
_ORIGINAL_READ = TCPServer._read_data


def error_body(status: int, *, header_limit: int) -> bytes:
    """The JSON error for a status Hypercorn answers itself."""
    code = "invalid_request" if status < 500 or status == 501 else "internal_error"
    if status == 400:
        message = "the request is not valid HTTP/1.1"
    elif status == 501:
        message = "the request uses an HTTP feature this server does not implement"
    elif status == 431:
        message = f"the request's headers are larger than the limit of {header_limit} bytes"
    else:
        message = HTTPStatus(status).phrase.lower()
    return orjson.dumps({"error": {"code": code, "message": message}})


async def _send_json_error_response(self: Any, status_code: int) -> None:
    body = error_body(status_code, header_limit=self.config.h11_max_incomplete_size)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await self._send_h11_event(
        h11.Response(
            status_code=status_code,
            headers=list(chain(headers, self.config.response_headers("h11"))),
        )
    )
    await self._send_h11_event(h11.Data(data=body))
    await self._send_h11_event(h11.EndOfMessage())


CLOSE_TIMEOUT = 5.0


async def _read_data_then_close(self: Any) -> None:
    try:
        await _ORIGINAL_READ(self)
    finally:
        with trio.move_on_after(CLOSE_TIMEOUT, shield=True):  # a socket close never hangs
            await self.idle_task.stop()
            await self.stream.aclose()


def _check(method: Any, original: Any, parameters: list[str]) -> None:
    if method is not original or list(inspect.signature(method).parameters) != parameters:
        name = method.__qualname__
        raise RuntimeError(f"hypercorn's {name} changed; review app.hypercorn_patches")


def install() -> None:
    """Apply both changes (idempotent)."""
    if H11Protocol._send_error_response is not _send_json_error_response:
        _check(H11Protocol._send_error_response, _ORIGINAL, ["self", "status_code"])
        setattr(H11Protocol, "_send_error_response", _send_json_error_response)  # noqa: B010
    if TCPServer._read_data is not _read_data_then_close:
        _check(TCPServer._read_data, _ORIGINAL_READ, ["self"])
        setattr(TCPServer, "_read_data", _read_data_then_close)  # noqa: B010
