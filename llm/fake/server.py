"""`serve_fake_upstream`: listen, route requests to the chat and control handlers."""

from __future__ import annotations

from functools import partial

import trio

from llm.fake.behaviour import FakeBehaviour
from llm.fake.chat import answer_chat
from llm.fake.control import answer_control
from llm.fake.events import error_body
from llm.fake.http11 import Request, Responder, serve_connection
from llm.fake.upstream import FakeUpstream

CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions", "/api/v1/chat/completions"})


async def serve_fake_upstream(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    behaviour: FakeBehaviour | None = None,
    task_status: trio.TaskStatus[FakeUpstream] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the fake OpenAI-compatible upstream until cancelled.

    Calls ``task_status.started(fake)`` once listening (``fake.base_url`` carries the real port);
    on cancellation every connection is closed.
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    fake = FakeUpstream(
        behaviour=behaviour or FakeBehaviour(),
        host=host,
        port=listeners[0].socket.getsockname()[1],
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, partial(_connection, fake), listeners)
        task_status.started(fake)


async def _connection(fake: FakeUpstream, stream: trio.SocketStream) -> None:
    fake.connections_total += 1
    fake.connections_open += 1
    try:
        await serve_connection(stream, partial(_route, fake), fake.record_internal_error)
    finally:
        fake.connections_open -= 1
        fake.notify()


async def _route(fake: FakeUpstream, request: Request, out: Responder) -> None:
    if request.path in CHAT_PATHS:
        if request.method != "POST":
            await out.respond(405, error_body(405, "use POST"))
        else:
            await answer_chat(fake, request, out)
    elif request.path.startswith("/_fake/"):
        await answer_control(fake, request, out)
    else:
        await out.respond(404, error_body(404, f"no route {request.path}"))
