"""Control endpoints under ``/_fake/`` so another process (a benchmark) can steer the fake.

- ``GET /_fake/stats``: counters (`FakeUpstream.stats`).
- ``GET /_fake/behaviour``: the current `FakeBehaviour` as JSON.
- ``PUT /_fake/behaviour``: a JSON object of `FakeBehaviour` fields to change; answers the result.
- ``POST /_fake/faults``: a `Fault` as JSON (or a list of them) to append to the queue.
- ``POST /_fake/reset``: forget requests, counters and pending faults (behaviour is kept).
"""

from __future__ import annotations

import json
from typing import Any

from llm.fake.behaviour import InvalidFakeConfig
from llm.fake.events import error_body
from llm.fake.faults import Fault
from llm.fake.http11 import Request, Responder
from llm.fake.upstream import FakeUpstream


async def answer_control(fake: FakeUpstream, request: Request, out: Responder) -> None:
    """Serve one ``/_fake/...`` request."""
    route = (request.method, request.path)
    try:
        if route == ("GET", "/_fake/stats"):
            result: Any = fake.stats()
        elif route == ("GET", "/_fake/behaviour"):
            result = fake.behaviour.to_json()
        elif route == ("PUT", "/_fake/behaviour"):
            fake.behaviour.patch(_json(request))
            result = fake.behaviour.to_json()
        elif route == ("POST", "/_fake/faults"):
            data = _json(request)
            fake.faults.extend([Fault.from_json(f) for f in _as_list(data)])
            result = {"faults_pending": len(fake.faults)}
        elif route == ("POST", "/_fake/reset"):
            fake.reset()
            result = fake.stats()
        else:
            await out.respond(404, error_body(404, f"no control route {request.path}"))
            return
    except InvalidFakeConfig as exc:
        await out.respond(400, error_body(400, str(exc)))
        return
    await out.respond(200, json.dumps(result).encode())


def _json(request: Request) -> Any:
    try:
        return json.loads(request.body)
    except ValueError as exc:
        raise InvalidFakeConfig("body is not valid JSON") from exc


def _as_list(data: Any) -> list[Any]:
    return data if isinstance(data, list) else [data]
