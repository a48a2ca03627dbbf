"""``POST /v1/chat/completions``: plan the answer for one request, then stream or send it."""

from __future__ import annotations

import json
import random
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import trio

from llm.fake.behaviour import InvalidFakeConfig
from llm.fake.content import (
    FAKE_MARK,
    estimate_prompt_tokens,
    last_user_text,
    reply_text,
    seed_for,
    sentences,
    split_chunks,
)
from llm.fake.directives import Directives, parse_directives
from llm.fake.events import EventEncoder, UsageReport, completion_body, error_body, error_object
from llm.fake.faults import Fault
from llm.fake.http11 import Request, Responder
from llm.fake.schema_instance import candidates_in, schema_instance
from llm.fake.timer import park, sleep_until
from llm.fake.upstream import FakeUpstream, RecordedRequest

_STREAMING_FAULTS = frozenset({"mid_stream_error", "hang_after", "truncate"})


@dataclass
class _Plan:
    """Everything decided before the first byte of one answer."""

    pieces: list[str]
    finish_reason: str
    first_token_delay: float
    tokens_per_second: float
    keepalive_interval: float
    empty_usage_choices: bool
    fault: Fault | None
    usage: UsageReport
    generation_id: str
    model: str
    created: int


async def answer_chat(fake: FakeUpstream, request: Request, out: Responder) -> None:
    """Answer one chat-completions request like OpenRouter would, and record it."""
    record = fake.begin(request.method, request.path, request.headers)
    out.on_complete = lambda: fake.end(record, status=out.status, disconnected=False)
    try:
        await _answer(fake, request, out, record)
    finally:
        if not record.finished:
            fake.end(record, status=out.status, disconnected=out.disconnected)
        elif out.disconnected and not record.disconnected:
            fake.amend_disconnected(record)  # the completing write itself failed


async def _error(out: Responder, status: int, message: str) -> None:
    await out.respond(status, error_body(status, message))


async def _answer(
    fake: FakeUpstream, request: Request, out: Responder, record: RecordedRequest
) -> None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        await _error(out, 401, "No auth credentials found")
        return
    try:
        body = json.loads(request.body)
    except ValueError:
        await _error(out, 400, "Request body is not valid JSON")
        return
    record.body = body
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not messages:
        await _error(out, 400, "messages must be a non-empty array")
        return
    record.stream = bool(body.get("stream"))
    try:
        directives = parse_directives(messages)
        plan = _plan(fake, body, messages, directives)
    except InvalidFakeConfig as exc:
        await _error(out, 400, f"fake upstream: {exc}")
        return
    record.fault = plan.fault
    record.generation_id = plan.generation_id
    record.reply = "".join(plan.pieces)

    fault = plan.fault
    if fault is not None and fault.kind == "disconnect":
        out.abort()
        return
    if fault is not None and fault.kind == "http_status":
        await _send_http_fault(out, fault)
        return
    if record.stream:
        await _stream(fake, out, record, plan)
    else:
        await _complete(fake, out, record, plan)


def _plan(
    fake: FakeUpstream, body: dict[str, Any], messages: list[Any], directives: Directives
) -> _Plan:
    behaviour = fake.behaviour
    seed = seed_for(messages)
    fault = _choose_fault(fake, directives, seed, last_user_text(messages))
    chunk_chars = directives.chunk_chars or behaviour.chunk_chars
    tokens = behaviour.tokens if directives.tokens is None else directives.tokens
    text = _content(body, messages, seed, tokens * chunk_chars, fault, directives.say)
    pieces = split_chunks(text, chunk_chars)
    finish_reason = "stop"
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
    if isinstance(max_tokens, int) and 0 < max_tokens < len(pieces):
        pieces = pieces[:max_tokens]
        finish_reason = "length"
    style = directives.usage_style or behaviour.usage_chunk_style
    sequence = fake.next_sequence()
    if style == "alternate":
        style = "empty_choices" if sequence % 2 else "empty_delta_choice"
    prompt_tokens = estimate_prompt_tokens(messages)
    completion_tokens = len(pieces)
    model, unavailable = _answering_model(body, directives, behaviour.default_model)
    if unavailable is not None and fault is None:
        fault = unavailable
    return _Plan(
        pieces=pieces,
        finish_reason=finish_reason,
        first_token_delay=_pick(directives.ttft, behaviour.first_token_delay),
        tokens_per_second=_pick(directives.tps, behaviour.tokens_per_second),
        keepalive_interval=_pick(directives.keepalive, behaviour.keepalive_interval),
        empty_usage_choices=style == "empty_choices",
        fault=fault,
        usage=UsageReport(
            prompt_tokens,
            completion_tokens,
            round((prompt_tokens + completion_tokens) * behaviour.cost_per_token, 10),
        ),
        generation_id=f"gen-{int(time.time())}-{secrets.token_hex(8)}",
        model=model,
        created=int(time.time()),
    )


def _answering_model(
    body: dict[str, Any], directives: Directives, default: str
) -> tuple[str, Fault | None]:
    """Which model answers: ``model``, or with a ``models`` list (OpenRouter's fallbacks) the
    first one not failed by a ``fail_model`` directive; when all fail, a 502 fault."""
    model = body.get("model")
    asked = model if isinstance(model, str) and model else default
    listed = body.get("models")
    if isinstance(listed, list) and listed:
        if not all(isinstance(m, str) and m for m in listed):
            raise InvalidFakeConfig("models must be a list of model names")
        candidates = list(listed)
    else:
        candidates = [asked]
    for candidate in candidates:
        if candidate not in directives.fail_models:
            return candidate, None
    message = f"no model could answer: {', '.join(candidates)} failed"
    return asked, Fault(kind="http_status", status=502, message=message)


def _pick(override: float | None, default: float) -> float:
    return default if override is None else override


def _choose_fault(
    fake: FakeUpstream, directives: Directives, seed: int, last_user: str
) -> Fault | None:
    if directives.fault is not None and directives.fault_text is not None:
        key = (directives.fault_text, seed)
        uses = fake.directive_uses.get(key, 0)
        if directives.fault_times is None or uses < directives.fault_times:
            fake.directive_uses[key] = uses + 1
            return directives.fault
    return fake.faults.take(last_user)


def _content(
    body: dict[str, Any],
    messages: Sequence[Any],
    seed: int,
    length: int,
    fault: Fault | None,
    say: str | None = None,
) -> str:
    response_format = body.get("response_format")
    if not isinstance(response_format, Mapping):
        response_format = {}
    kind = response_format.get("type")
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            raise InvalidFakeConfig("response_format.json_schema.schema must be an object")
        value = schema_instance(schema, seed, candidates=candidates_in(messages))
    elif kind == "json_object":
        value = {"text": reply_text(messages, 80, seed).strip()}
    elif say is not None:
        return FAKE_MARK + say
    else:
        return reply_text(messages, length, seed)
    text = json.dumps(value, ensure_ascii=False)
    if fault is not None and fault.kind == "invalid_json":
        return "Sure! Here is what you asked for: " + text[: max(1, len(text) // 2)]
    if fault is not None and fault.kind == "json_in_fence":
        pretty = json.dumps(value, ensure_ascii=False, indent=2)
        return f"Here you go:\n\n```json\n{pretty}\n```\n\n{sentences(random.Random(seed), 1)}"
    return text


async def _send_http_fault(out: Responder, fault: Fault) -> None:
    headers: list[tuple[str, str]] = []
    if fault.retry_after is not None:
        value = fault.retry_after
        headers.append(("retry-after", value if isinstance(value, str) else f"{value:g}"))
    if fault.retry_after_ms is not None:
        headers.append(("retry-after-ms", str(fault.retry_after_ms)))
    body = error_body(fault.error_code(), fault.error_message(), fault.metadata)
    await out.respond(fault.status, body, headers=headers)


def _response_headers(plan: _Plan, content_type: str) -> list[tuple[str, str]]:
    return [
        ("content-type", content_type),
        ("cache-control", "no-cache"),
        ("x-generation-id", plan.generation_id),
    ]


async def _think(out: Responder, encoder: EventEncoder, plan: _Plan, keepalives: bool) -> None:
    """Wait out the first-token delay, sending keep-alive comments (the first one at once)."""
    deadline = trio.current_time() + plan.first_token_delay
    interval = plan.keepalive_interval
    if keepalives and interval > 0 and deadline > trio.current_time():
        await _KeepAlives(out, encoder.keepalive, deadline, interval).run()
    else:
        await sleep_until(deadline)


async def _keep_alive_forever(out: Responder, encoder: EventEncoder, plan: _Plan) -> None:
    interval = plan.keepalive_interval
    if interval <= 0:
        await trio.sleep_forever()
    while True:
        await trio.sleep(interval)
        await out.write(encoder.keepalive)


async def _stream(fake: FakeUpstream, out: Responder, record: RecordedRequest, plan: _Plan) -> None:
    behaviour = fake.behaviour
    encoder = EventEncoder(plan.generation_id, plan.model, plan.created, behaviour.line_ending)
    fault = plan.fault
    kind = fault.kind if fault is not None else None
    await out.start(200, _response_headers(plan, "text/event-stream"))
    fake.notify()
    if fault is not None and kind == "error_only":
        await out.finish(encoder.error(fault.error_code(), fault.error_message(), fault.metadata))
        return
    await _think(out, encoder, plan, keepalives=fault is None or fault.keepalives)
    if fault is not None and kind == "hang":
        if not fault.keepalives:
            await trio.sleep_forever()
        await _keep_alive_forever(out, encoder, plan)
    pieces = plan.pieces
    if fault is not None and kind in _STREAMING_FAULTS:
        pieces = pieces[: fault.after_chunks]
    await _send_pieces(fake, out, record, encoder, pieces, plan.tokens_per_second)
    if fault is not None and kind == "mid_stream_error":
        await out.finish(encoder.error(fault.error_code(), fault.error_message(), fault.metadata))
    elif kind == "hang_after":
        await trio.sleep_forever()
    elif fault is not None and kind == "truncate":
        if fault.graceful:
            await out.finish()
        else:
            out.abort()
    else:
        await out.finish(
            encoder.finish(plan.finish_reason)
            + encoder.usage(plan.usage, empty_choices=plan.empty_usage_choices)
            + encoder.done
        )


async def _send_pieces(
    fake: FakeUpstream,
    out: Responder,
    record: RecordedRequest,
    encoder: EventEncoder,
    pieces: list[str],
    tokens_per_second: float,
) -> None:
    """Send content events paced at ``tokens_per_second``, never early, batching late ones."""
    if fake.behaviour.split_utf8:
        for piece in pieces:
            event = encoder.content(piece)
            cut = _utf8_cut(event)
            await out.write(event[:cut])
            await out.write(event[cut:])
            _sent(fake, record, 1)
    elif tokens_per_second <= 0:
        if pieces:
            await out.write(b"".join([encoder.content(p) for p in pieces]))
            _sent(fake, record, len(pieces))
    elif pieces:
        await _PacedWrites(fake, out, record, encoder, pieces, 1 / tokens_per_second).run()


class _TimerWrites:
    """Writes made by the timer task (`llm.fake.timer`) while the handler's task is parked.

    A stream writes on a schedule: keep-alive comments, then paced content events. Waking the
    handler's task for each write (trio's reschedule and step through the handler's stack)
    cost more than the write itself, so `fire` writes from the timer task instead, and the
    handler's task wakes only when the schedule is over, or to wait for a full socket to take
    the rest of a write (`Responder.flush`), after which it parks again.
    """

    due: float
    """When `fire` is next due (a `llm.fake.timer.TimedJob`)."""

    def __init__(self, out: Responder) -> None:
        self._out = out
        self._unflushed = False

    def fire(self, now: float) -> bool:
        """Write what is due at ``now``; whether to fire again at the updated ``due``."""
        raise NotImplementedError

    def _flushed(self) -> bool:
        """The write that `fire` left to flush is out: whether to fire again."""
        raise NotImplementedError

    def _write(self, data: bytes) -> bool:
        """Write without waiting; False if the handler's task must take over (to flush the
        rest, or to be cancelled: the client is gone)."""
        if not self._out.write_nowait(data):
            self._unflushed = True
            return False
        return not self._out.disconnected

    async def run(self) -> None:
        """Follow the schedule to its end (the first `fire` is due now, in this task)."""
        again = self.fire(trio.current_time())
        while True:
            if again:
                await park(self)
            if not self._unflushed:
                return
            self._unflushed = False
            await self._out.flush()
            again = self._flushed()


class _KeepAlives(_TimerWrites):
    """A keep-alive comment every ``interval`` from now while before ``deadline``; then wakes
    the handler's task at ``deadline``."""

    def __init__(self, out: Responder, comment: bytes, deadline: float, interval: float) -> None:
        super().__init__(out)
        self._comment = comment
        self._deadline = deadline
        self._interval = interval
        self._next = trio.current_time()
        self.due = self._next

    def fire(self, now: float) -> bool:
        if self._next >= self._deadline:
            return False  # the deadline: thinking is over
        self._next += self._interval
        self.due = min(self._next, self._deadline)
        return self._write(self._comment)

    def _flushed(self) -> bool:
        return True  # on to the next comment or the deadline


class _PacedWrites(_TimerWrites):
    """The content events of one stream, paced: piece ``i`` is due ``i * interval`` after the
    first. Each write sends every piece due by then (a late write catches up in one write,
    never early), and with ``coalesce_interval`` the next write waits at least that long."""

    def __init__(
        self,
        fake: FakeUpstream,
        out: Responder,
        record: RecordedRequest,
        encoder: EventEncoder,
        pieces: list[str],
        interval: float,
    ) -> None:
        super().__init__(out)
        self._fake = fake
        self._behaviour = fake.behaviour
        self._record = record
        self._content = encoder.content
        self._pieces = pieces
        self._interval = interval
        self._start = trio.current_time()
        self._sent = 0
        self._writing = 0
        """Pieces in the latest write (counted as sent once it is out)."""
        self.due = self._start

    def fire(self, now: float) -> bool:
        sent, start, interval = self._sent, self._start, self._interval
        self._fake.note_pacing_lag(now - (start + sent * interval))
        upto = max(min(len(self._pieces), int((now - start) / interval) + 1), sent + 1)
        if upto == sent + 1:  # the usual case: one piece, on time
            data = self._content(self._pieces[sent])
        else:
            content = self._content
            data = b"".join([content(p) for p in self._pieces[sent:upto]])
        self._sent = upto
        self._writing = upto - sent
        return self._write(data) and self._flushed()

    def _flushed(self) -> bool:
        _sent(self._fake, self._record, self._writing)
        if self._sent >= len(self._pieces):
            return False
        self.due = self._start + self._sent * self._interval
        coalesce = self._behaviour.coalesce_interval
        if coalesce:
            self.due = max(self.due, trio.current_time() + coalesce)
        return True


def _sent(fake: FakeUpstream, record: RecordedRequest, count: int) -> None:
    record.chunks_sent += count
    fake.chunks_sent += count
    fake.notify()


def _utf8_cut(event: bytes) -> int:
    """Where to split an event: inside its first multi-byte character, else in the middle."""
    for index, byte in enumerate(event):
        if byte >= 0xC0:
            return index + 1
    return len(event) // 2


async def _complete(
    fake: FakeUpstream, out: Responder, record: RecordedRequest, plan: _Plan
) -> None:
    fault = plan.fault
    kind = fault.kind if fault is not None else None
    generation = len(plan.pieces) / plan.tokens_per_second if plan.tokens_per_second else 0.0
    await trio.sleep(plan.first_token_delay + generation)
    if kind in ("hang", "hang_after"):
        await trio.sleep_forever()
    pieces = plan.pieces
    error = None
    finish_reason = plan.finish_reason
    if fault is not None and kind in ("mid_stream_error", "error_only"):
        pieces = pieces[: fault.after_chunks] if kind == "mid_stream_error" else []
        error = error_object(fault.error_code(), fault.error_message(), fault.metadata)
        finish_reason = "error"
    body = completion_body(
        generation_id=plan.generation_id,
        model=plan.model,
        created=plan.created,
        text="".join(pieces),
        finish_reason=finish_reason,
        usage=UsageReport(plan.usage.prompt_tokens, len(pieces), plan.usage.cost),
        error=error,
    )
    headers = _response_headers(plan, "application/json")
    if kind == "truncate":
        await out.start(200, [*headers, ("content-length", str(len(body)))])
        await out.write(body[: len(body) // 2])
        out.abort()
        return
    _sent(fake, record, len(pieces))
    await out.respond(200, body, headers=headers[1:])
