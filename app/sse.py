"""Server-sent events over Quart: framing, coalescing, keep-alive pings, no response timeout."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from quart import Response, request

from app.services.events import EventLog, EventSource, LogSource

PING = b": ping\n\n"


def wants_stream() -> bool:
    """True when the request's Accept header asks for `text/event-stream`."""
    return "text/event-stream" in request.headers.get("Accept", "")


def encode_event(event_id: int, name: str, data: object) -> bytes:
    # orjson writes compact UTF-8 (no ASCII escapes) and never emits a raw newline.
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event_id, name.encode(), orjson.dumps(data))


async def _frames(source: EventSource, ping_interval: float) -> AsyncIterator[bytes]:
    while True:
        batch = await source.next_batch(ping_interval)
        if batch is None:
            return
        if not batch:
            yield PING
            continue
        yield b"".join(encode_event(event_id, name, data) for event_id, name, data in batch)


def source_stream(source: EventSource, *, ping_interval: float) -> Response:
    """A `text/event-stream` response relaying `source` until its terminal event.

    A client that disconnects only ends this subscription, never the work behind the events.
    """
    response = Response(
        _frames(source, ping_interval),
        status=200,
        content_type="text/event-stream; charset=utf-8",
    )
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    response.timeout = None
    return response


def event_stream(log: EventLog, *, ping_interval: float) -> Response:
    """A `text/event-stream` response relaying a run's whole `log`."""
    return source_stream(LogSource(log), ping_interval=ping_interval)
