"""The servers `bench.floor` measures: the stream scenarios' chat request answered with three
SSE events (`user_message`, one `delta`, `done`) by ever more of FastNPC's HTTP stack, and by
nothing else (no auth, database or LLM).

Every variant runs like ``fastnpc serve``: Hypercorn's trio worker with `app.server`'s
`hypercorn_config` (header timeout from `app.settings.Settings`), `app.hypercorn_patches`
installed, and `app.runtime.tune_for_serving` (GIL switch interval, GC). The variants:

- ``asgi``: a bare ASGI callable (reads the body, ``orjson.loads`` it, sends the events);
- ``guard``: ``asgi`` inside `app.connection_guard.ConnectionGuard`, as ``fastnpc serve`` wraps
  its app;
- ``quart``: the guard around a QuartTrio app whose route reads ``await request.get_json()``
  and returns `app.sse.source_stream` (the real routes' SSE `Response` from an async
  generator);
- ``schema``: ``quart`` with QuartSchema and ``@validate_request(app.schemas.ChatIn)``, the
  real chat route's request model.

``python -m bench.floor_apps --variant quart`` serves on 127.0.0.1, port 0 by default, and
prints its URL as the first line of its output; ``GET /readyz`` answers 200 once it serves.
``--delay S`` waits S seconds before the `delta` (0: the three events at once).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any

import orjson
import trio
from hypercorn.trio import serve as hypercorn_serve
from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, Scope
from quart import request
from quart.typing import ResponseReturnValue
from quart_schema import QuartSchema, validate_request
from quart_trio import QuartTrio

from app import hypercorn_patches
from app.cli import configure_logging
from app.connection_guard import ConnectionGuard
from app.runtime import tune_for_serving
from app.schemas import ChatIn
from app.server import GRACEFUL_TIMEOUT, hypercorn_config, wait_for_signal
from app.services.events import NumberedEvent
from app.settings import Settings
from app.sse import encode_event, source_stream

VARIANTS = ("asgi", "guard", "quart", "schema")
CHAT_RULE = "/api/characters/<character_id>/chat"
CHAT_PATH = re.compile(r"^/api/characters/[^/]+/chat$")
REPLY = "Well met, traveller."
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def reply_events(content: str) -> list[NumberedEvent]:
    """The three events every variant sends for a message ``content``."""
    return [
        (1, "user_message", {"role": "user", "content": content}),
        (2, "delta", {"text": REPLY}),
        (3, "done", {}),
    ]


class ReplySource:
    """An `app.services.events.EventSource` of `reply_events`, one event per batch, waiting
    ``delay`` seconds before the `delta`."""

    def __init__(self, content: str, delay: float) -> None:
        self._events = reply_events(content)
        self._delay = delay
        self._next = 0

    async def next_batch(self, wait: float) -> list[NumberedEvent] | None:
        if self._next == len(self._events):
            return None
        event = self._events[self._next]
        if event[1] == "delta" and self._delay:
            await trio.sleep(self._delay)
        self._next += 1
        return [event]


# ---- a bare ASGI app


async def _read_body(receive: ASGIReceiveCallable) -> bytes:
    parts = []
    while True:
        message: Any = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


async def _send_plain(send: ASGISendCallable, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _lifespan(receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    while True:
        message: Any = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def asgi_app(delay: float) -> ASGIFramework:
    """The bare ASGI variant: `POST` to the chat path streams the events, `GET /readyz` 200."""
    ping = Settings().sse_ping_interval

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["method"] == "GET" and scope["path"] == "/readyz":
            await _send_plain(send, 200, b"ready")
            return
        if scope["method"] != "POST" or not CHAT_PATH.match(scope["path"]):
            await _send_plain(send, 404, b"not found")
            return
        content = orjson.loads(await _read_body(receive))["content"]
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        source = ReplySource(content, delay)
        while (batch := await source.next_batch(ping)) is not None:
            body = b"".join(encode_event(*event) for event in batch)
            await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


# ---- QuartTrio, with and without quart-schema


def quart_app(delay: float, *, schema: bool) -> QuartTrio:
    """The Quart variants: the chat route reads its JSON (through quart-schema's
    ``validate_request(ChatIn)`` when ``schema``) and returns `app.sse.source_stream`."""
    ping = Settings().sse_ping_interval
    app = QuartTrio("floor")

    @app.get("/readyz")
    async def readyz() -> ResponseReturnValue:
        return "ready"

    if schema:
        QuartSchema(app, redoc_ui_path=None, scalar_ui_path=None, swagger_ui_path=None)

        @app.post(CHAT_RULE)
        @validate_request(ChatIn)
        async def chat_validated(character_id: str, data: ChatIn) -> ResponseReturnValue:
            return source_stream(ReplySource(data.content, delay), ping_interval=ping)

    else:

        @app.post(CHAT_RULE)
        async def chat(character_id: str) -> ResponseReturnValue:
            payload = await request.get_json()
            return source_stream(ReplySource(payload["content"], delay), ping_interval=ping)

    return app


BUILDERS: dict[str, Callable[[float], ASGIFramework]] = {
    "asgi": asgi_app,
    "guard": lambda delay: ConnectionGuard(asgi_app(delay)),
    "quart": lambda delay: ConnectionGuard(quart_app(delay, schema=False)),
    "schema": lambda delay: ConnectionGuard(quart_app(delay, schema=True)),
}


async def serve_variant(variant: str, host: str, port: int, delay: float) -> None:
    """Serve ``variant`` as ``fastnpc serve`` serves its app, until SIGINT or SIGTERM."""
    app = BUILDERS[variant](delay)
    config = hypercorn_config(
        f"{host}:{port}",
        graceful_timeout=GRACEFUL_TIMEOUT,
        header_timeout=Settings().header_timeout,
    )
    hypercorn_patches.install()
    tune_for_serving()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            lambda task_status: hypercorn_serve(
                app, config, shutdown_trigger=wait_for_signal, task_status=task_status
            )
        )
        print(binds[0], flush=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m bench.floor_apps``."""
    parser = argparse.ArgumentParser(prog="python -m bench.floor_apps", description=__doc__)
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before the delta")
    args = parser.parse_args(argv)
    configure_logging()
    trio.run(serve_variant, args.variant, args.host, args.port, args.delay)


if __name__ == "__main__":
    main()
