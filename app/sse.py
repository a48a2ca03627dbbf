"""Server-sent events over Quart: framing, coalescing, keep-alive pings, no response timeout."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import trio
from quart import Response, request

from app.services.events import EventLog, coalesce

PING = b": ping\n\n"


def wants_stream() -> bool:
    """True when the request's Accept header asks for `text/event-stream`."""
    return "text/event-stream" in request.headers.get("Accept", "")


def encode_event(event_id: int, name: str, data: object) -> bytes:
    # orjson writes compact UTF-8 (no ASCII escapes) and never emits a raw newline.
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event_id, name.encode(), orjson.dumps(data))


async def _follow(log: EventLog, ping_interval: float) -> AsyncIterator[bytes]:
    cursor = 0
    event_id = 0
    while True:
        batch = None
        with trio.move_on_after(ping_interval):
            batch = await log.wait_from(cursor)
        if batch is None:
            yield PING
            continue
        if not batch:
            return
        cursor += len(batch)
        parts = []
        for name, data in coalesce(batch):
            event_id += 1
            parts.append(encode_event(event_id, name, data))
        yield b"".join(parts)


def event_stream(log: EventLog, *, ping_interval: float) -> Response:
    """A `text/event-stream` response relaying `log` until its terminal event.

    A client that disconnects only ends this subscription, never the work behind the log.
    """
    response = Response(
        _follow(log, ping_interval),
        status=200,
        content_type="text/event-stream; charset=utf-8",
    )
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    response.timeout = None
    return response
