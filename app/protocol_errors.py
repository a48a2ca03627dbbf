"""JSON bodies for the errors Hypercorn answers itself, below the app.

A request h11 cannot parse never reaches the ASGI app: headers larger than
`h11_max_incomplete_size` get 431, malformed framing (`Content-Length: -1`, a bad request line)
gets 400. Hypercorn 0.17/0.18 sends those from `H11Protocol._send_error_response` with an empty
body, and offers no configuration or public hook for it. This module replaces that one method
(the only use of a Hypercorn internal in the project) with one that sends the API's JSON error
shape; `install` refuses to run against a Hypercorn whose method is not the one it replaces, so
an upgrade that changes it fails loudly at start instead of silently.
"""

from __future__ import annotations

import inspect
from http import HTTPStatus
from itertools import chain
from typing import Any

import h11
import orjson
from hypercorn.protocol.h11 import H11Protocol

_ORIGINAL = H11Protocol._send_error_response


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


def install() -> None:
    """Make Hypercorn's own HTTP/1.1 error responses JSON (idempotent)."""
    current = H11Protocol._send_error_response
    if current is _send_json_error_response:
        return
    if current is not _ORIGINAL or list(inspect.signature(current).parameters) != [
        "self",
        "status_code",
    ]:
        raise RuntimeError("hypercorn's H11Protocol._send_error_response changed; review")
    setattr(H11Protocol, "_send_error_response", _send_json_error_response)  # noqa: B010
