"""The OpenRouter client: streamed chat completions over raw httpx, with retries,
deadlines, admission control and metrics.

One logical call = one limiter slot held for the whole call, up to
``1 + max_retries`` attempts, and one ``total_timeout`` deadline over all of it.
Each attempt must produce its first token within ``timeout`` (keep-alive
comments do not count); once streaming, each wait for the next token is bounded
by ``idle_timeout``. Attempts are retried only before the first delta reaches
the caller. Streamed replies are read as data comes while at most 64 streams are
open; under heavier load reads are spaced up to 0.3 s apart and each read hands over
every event received since (``llm/pacing.py``). The first delta is never held.
Deadlines are cancel scopes around our own awaits, never around the caller's code, and
are translated to ``LLMTimeout`` subclasses.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar, cast

import httpx
import pydantic
import trio

from llm.errors import (
    AuthenticationError,
    FirstTokenTimeout,
    IdleTimeout,
    LLMError,
    ProtocolError,
    TotalTimeout,
)
from llm.h1 import BULK_READS
from llm.limiter import Limiter
from llm.metrics import LLMMetrics
from llm.pacing import StreamPacing
from llm.protocol import (
    StreamState,
    error_from_event,
    error_from_response,
    error_from_transport,
)
from llm.retry import RetryPolicy, parse_retry_after
from llm.settings import LLMSettings
from llm.sse import SSEDecoder, SSEEvent
from llm.structured import (
    StructuredOutputError,
    feedback_message,
    parse_structured,
    response_format_for,
)
from llm.types import ChatMessage, Completion, Usage
from llm.usage import RECORD_GRACE, UsageSink

M = TypeVar("M", bound=pydantic.BaseModel)

log = logging.getLogger("llm")

# After [DONE], how long to wait for the end of the body so the connection can be reused.
_DRAIN_GRACE = 1.0
# Bound on closing a response (it never waits on the network; this is a safety net).
_CLOSE_GRACE = 5.0
_MAX_ERROR_BODY = 64 * 1024


class _Upstream:
    """One open streamed response of one attempt."""

    __slots__ = (
        "response",
        "state",
        "keepalives",
        "_chunks",
        "_decoder",
        "_eof",
        "_pacing",
        "_read_after",
        "_failure",
    )

    def __init__(
        self, response: httpx.Response, model: str, pacing: StreamPacing | None = None
    ) -> None:
        self.response = response
        self.state = StreamState(model)
        self.keepalives = 0  # comment lines seen; they never count as progress
        # We ask for identity encoding; raw bytes then skip httpx's decoder and re-chunker.
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        chunks = response.aiter_raw() if encoding == "identity" else response.aiter_bytes()
        self._chunks = cast(AsyncGenerator[bytes, None], chunks)
        self._decoder = SSEDecoder()
        self._eof = False
        # Read coalescing: once deltas flow, the next network read waits until
        # ``pacing.interval()`` seconds after the previous delivery (0 at light load: no
        # wait), so one wake-up takes every event that arrived meanwhile. Only over a
        # transport whose reads return everything received (``llm.h1``): over another one a
        # read may return one event, and pacing would then mean one event per interval.
        paced = pacing is not None and pacing.enabled and response.extensions.get(BULK_READS)
        self._pacing = pacing if paced else None
        self._read_after = 0.0
        self._failure: LLMError | None = None

    async def fill(self) -> None:
        """Read until a delta is pending (and every event already received is decoded) or
        the stream is done; raise ``LLMError`` on failure.

        A failure read after deltas still pending is held back until they are taken, so
        a caller always gets every delta that arrived before it."""
        if self._failure is not None:
            raise self._failure
        state = self.state
        pending = state.pending
        if self._read_after and not state.done:
            await trio.sleep_until(self._read_after)
        try:
            while not pending:
                if state.done:
                    await self.drain()
                    return
                await self._read_chunk()
        except LLMError as exc:
            if not pending:
                raise
            self._failure = exc
            return
        if self._pacing is not None:
            interval = self._pacing.interval()
            self._read_after = trio.current_time() + interval if interval > 0 else 0.0

    async def _read_chunk(self) -> None:
        state = self.state
        try:
            chunk = await self._chunks.__anext__()
        except StopAsyncIteration:
            self._eof = True
            state.finish_at_eof()
            return
        except httpx.TransportError as exc:
            raise error_from_transport(exc) from exc
        for item in self._decoder.feed(chunk):
            if item.__class__ is SSEEvent:
                state.handle_data(item.data)
                if state.done:
                    return
            else:
                self.keepalives += 1

    async def read_body(self) -> bytes:
        """The start (up to 64 KiB) of a body that is not an event stream, e.g. an error."""
        parts: list[bytes] = []
        size = 0
        try:
            async for chunk in self._chunks:
                parts.append(chunk)
                size += len(chunk)
                if size >= _MAX_ERROR_BODY:
                    break
        except httpx.TransportError as exc:
            raise error_from_transport(exc) from exc
        return b"".join(parts)

    async def drain(self) -> None:
        # Reading the body to its end lets httpx return the connection to the pool.
        if self._eof:
            return
        with trio.move_on_after(_DRAIN_GRACE):
            try:
                async for _ in self._chunks:
                    pass
                self._eof = True
            except httpx.TransportError:
                pass

    async def aclose(self) -> None:
        """Close the response; unless fully read, this drops the connection (the upstream
        sees the disconnect and stops generating)."""
        with trio.move_on_after(_CLOSE_GRACE, shield=True):
            try:
                await self._chunks.aclose()
                await self.response.aclose()
            except httpx.TransportError:
                pass


class ChatStream:
    """The deltas of one streamed completion: ``async for delta in stream`` gives non-empty
    strings. ``text`` is everything yielded so far (the partial reply after a failure or an
    early exit); ``result`` is set once the stream finished successfully; ``error`` is the
    ``LLMError`` that ended it, if any."""

    def __init__(self, upstream: _Upstream, *, total_deadline: float, idle_timeout: float) -> None:
        self._upstream = upstream
        self._pending = upstream.state.pending
        self._total_deadline = total_deadline
        self._idle_timeout = idle_timeout
        self._parts: list[str] = []
        self.result: Completion | None = None
        self.error: LLMError | None = None

    @property
    def text(self) -> str:
        """Everything yielded so far."""
        if len(self._parts) > 1:
            self._parts[:] = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    @property
    def model(self) -> str:
        """The model that answers: the one the chunks name (with a ``models`` fallback list,
        the provider's choice), else the one asked for."""
        return self._upstream.state.model

    @property
    def keepalives(self) -> int:
        """Keep-alive comments received on the successful attempt."""
        return self._upstream.keepalives

    def __aiter__(self) -> AsyncIterator[str]:
        return self

    async def __anext__(self) -> str:
        pending = self._pending
        if not pending:
            await self._refill()
        delta = pending.popleft()
        self._parts.append(delta)
        return delta

    def batches(self) -> AsyncIterator[str]:
        """Like iterating the stream, but each item is every delta received so far joined
        into one string: one item per network read instead of one per token."""
        return _Batches(self)

    async def next_batch(self) -> str:
        """All pending deltas joined (waiting for at least one); ``StopAsyncIteration`` at
        the end of the stream."""
        pending = self._pending
        if not pending:
            await self._refill()
        text = pending.popleft() if len(pending) == 1 else "".join(pending)
        pending.clear()
        self._parts.append(text)
        return text

    async def _refill(self) -> None:
        """Wait until a delta is pending; raise the stream's error or ``StopAsyncIteration``."""
        if self.error is not None:
            raise self.error
        state = self._upstream.state
        if not state.done:
            await self._wait_for_delta()
        if not self._pending:
            if self.result is None:
                self.result = state.completion(self.text)
                await self._upstream.drain()  # the body's end, so the connection is reused
            raise StopAsyncIteration

    async def _wait_for_delta(self) -> None:
        idle_deadline = trio.current_time() + self._idle_timeout
        deadline = min(idle_deadline, self._total_deadline)
        try:
            with trio.move_on_at(deadline) as scope:
                await self._upstream.fill()
        except LLMError as exc:
            self.error = exc
            raise
        if scope.cancelled_caught:
            if deadline == self._total_deadline:
                self.error = TotalTimeout("the LLM call exceeded its total time limit")
            else:
                self.error = IdleTimeout(
                    f"no token from the LLM for {self._idle_timeout:g} s mid-stream"
                )
            raise self.error


@contextmanager
def _counted(pacing: StreamPacing | None) -> Iterator[None]:
    """Count a streamed call (from its first attempt) among the open streams that set the
    read interval."""
    if pacing is None:
        yield
        return
    pacing.active += 1
    try:
        yield
    finally:
        pacing.active -= 1


class _Batches:
    __slots__ = ("_stream",)

    def __init__(self, stream: ChatStream) -> None:
        self._stream = stream

    def __aiter__(self) -> _Batches:
        return self

    async def __anext__(self) -> str:
        return await self._stream.next_batch()


class OpenRouterClient:
    """Client for OpenRouter's (OpenAI-compatible) chat completions.

    ``http`` is the process's shared ``httpx.AsyncClient`` (see ``make_http_client``),
    ``limiter`` bounds concurrent calls, ``metrics`` (default: a private one) counts them.
    ``retry_policy`` defaults to one built from ``settings``; tests may inject its sleep.
    ``usage_sink`` hears the usage of every successful call (see ``llm.usage``).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        limiter: Limiter,
        settings: LLMSettings,
        metrics: LLMMetrics | None = None,
        *,
        retry_policy: RetryPolicy | None = None,
        usage_sink: UsageSink | None = None,
    ) -> None:
        self._http = http
        self.usage_sink = usage_sink
        self.limiter = limiter
        self.settings = settings
        self.metrics = metrics if metrics is not None else LLMMetrics()
        self.metrics.add_known_models((settings.model, *settings.models))
        self.pacing = StreamPacing(settings.stream_batch, settings.stream_batch_max)
        self.retry_policy = retry_policy or RetryPolicy(
            max_retries=settings.max_retries, retry_after_cap=settings.retry_after_cap
        )
        self._url = settings.base_url.rstrip("/") + "/chat/completions"
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            "Accept-Encoding": "identity",
            "User-Agent": "fastnpc",
        }
        if settings.api_key is not None:
            headers["Authorization"] = f"Bearer {settings.api_key.get_secret_value()}"
        if settings.referer:
            headers["HTTP-Referer"] = settings.referer
        if settings.title:
            headers["X-Title"] = settings.title
        self._headers = httpx.Headers(headers)

    def __repr__(self) -> str:
        return f"OpenRouterClient(base_url={self.settings.base_url!r})"

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        user: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        models: Sequence[str] | None = None,
    ) -> Completion:
        """The whole reply to ``messages`` (streamed internally, so the same deadlines apply).
        ``models``: OpenRouter's fallback list (see ``stream``)."""
        return await self._complete(
            messages,
            model=model,
            user=user,
            temperature=temperature,
            max_tokens=max_tokens,
            models=models,
        )

    @asynccontextmanager
    async def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        user: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        models: Sequence[str] | None = None,
    ) -> AsyncIterator[ChatStream]:
        """Stream the reply to ``messages``: ``async with client.stream(...) as s:
        async for delta in s: ...``.

        ``models`` is OpenRouter's fallback list: the provider tries them in order and the
        chunks name the one that answered (``ChatStream.model``); ``model`` defaults to its
        first entry.

        Holds a limiter slot for the whole block. Attempts are retried only before the
        first delta is yielded; afterwards a failure raises from the iteration. Leaving
        the block early closes the response, which aborts the upstream request.
        """
        async with self._stream(
            messages,
            model=model,
            user=user,
            temperature=temperature,
            max_tokens=max_tokens,
            pacing=self.pacing,
            models=models,
        ) as chat:
            yield chat

    async def structured(
        self,
        messages: Sequence[ChatMessage],
        schema: type[M],
        *,
        model: str | None = None,
        user: str | None = None,
    ) -> M:
        """A reply parsed into ``schema`` (a pydantic model), requested as strict JSON schema.

        JSON is extracted from code fences or prose if needed. If it does not validate,
        one more call feeds the error back; if that fails too, ``ProtocolError``.
        """
        response_format = response_format_for(schema)
        conversation: list[ChatMessage] = list(messages)
        completion = await self._complete(
            conversation, model=model, user=user, response_format=response_format
        )
        try:
            return parse_structured(completion.text, schema)
        except StructuredOutputError as exc:
            log.info("structured reply for %s invalid, retrying once: %s", schema.__name__, exc)
            conversation.append({"role": "assistant", "content": completion.text})
            conversation.append(feedback_message(exc))
        completion = await self._complete(
            conversation, model=model, user=user, response_format=response_format
        )
        try:
            return parse_structured(completion.text, schema)
        except StructuredOutputError as exc:
            raise ProtocolError(
                f"the model's reply did not match {schema.__name__} after one retry: {exc}"
            ) from None

    async def _complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None,
        user: str | None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        response_format: dict[str, Any] | None = None,
        models: Sequence[str] | None = None,
    ) -> Completion:
        async with self._stream(
            messages,
            model=model,
            user=user,
            temperature=temperature,
            max_tokens=max_tokens,
            response_format=response_format,
            models=models,
        ) as chat:
            async for _ in chat:
                pass
        if chat.result is None:  # pragma: no cover - iteration ends only with a result
            raise ProtocolError("the stream ended without a result")
        return chat.result

    @asynccontextmanager
    async def _stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None,
        user: str | None,
        temperature: float | None,
        max_tokens: int | None,
        response_format: dict[str, Any] | None = None,
        pacing: StreamPacing | None = None,
        models: Sequence[str] | None = None,
    ) -> AsyncIterator[ChatStream]:
        fallbacks = list(models or ())
        model_name = model or (fallbacks[0] if fallbacks else self.settings.model)
        metrics = self.metrics
        metrics.record_call(model_name)
        in_setup = True
        usage: Usage | None = None
        try:
            if self.settings.api_key is None:
                raise AuthenticationError("no API key configured")
            content = self._encode(
                messages, model_name, temperature, max_tokens, response_format, fallbacks
            )
            async with self.limiter.slot(user):
                with _counted(pacing):
                    start = trio.current_time()
                    total_deadline = start + self.settings.total_timeout
                    upstream = await self._attempts(content, model_name, total_deadline, pacing)
                    if upstream.state.pending:
                        metrics.record_first_token(model_name, trio.current_time() - start)
                    in_setup = False
                    chat = ChatStream(
                        upstream,
                        total_deadline=total_deadline,
                        idle_timeout=self.settings.idle_timeout,
                    )
                    try:
                        yield chat
                    finally:
                        await upstream.aclose()
                        if chat.error is not None:
                            metrics.record_error(model_name, type(chat.error).__name__)
                        elif chat.result is not None:
                            usage = chat.result.usage
                            metrics.record_success(
                                model_name, trio.current_time() - start, usage
                            )
        except LLMError as exc:
            if in_setup:
                metrics.record_error(model_name, type(exc).__name__)
            raise
        finally:
            if usage is not None and self.usage_sink is not None:
                with trio.move_on_after(RECORD_GRACE, shield=True):
                    await self.usage_sink.record(user, model_name, usage)

    def _encode(
        self,
        messages: Sequence[ChatMessage],
        model: str,
        temperature: float | None,
        max_tokens: int | None,
        response_format: dict[str, Any] | None,
        models: Sequence[str] = (),
    ) -> bytes:
        body: dict[str, Any] = {
            "model": model,
            "messages": list(messages),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if models:
            body["models"] = list(models)
        if temperature is not None:
            body["temperature"] = temperature
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if response_format is not None:
            body["response_format"] = response_format
        return json.dumps(body, ensure_ascii=False).encode()

    async def _attempts(
        self, content: bytes, model: str, total_deadline: float, pacing: StreamPacing | None
    ) -> _Upstream:
        """Run attempts until one yields its first delta (or finishes), within the budget."""
        policy = self.retry_policy
        retries = 0
        while True:
            attempt_deadline = trio.current_time() + self.settings.timeout
            deadline = min(attempt_deadline, total_deadline)
            error: LLMError | None = None
            with trio.move_on_at(deadline):
                try:
                    return await self._open(content, model, pacing)
                except LLMError as exc:
                    error = exc
            if error is None:  # the deadline cancelled the attempt
                if deadline == total_deadline:
                    raise TotalTimeout("the LLM call exceeded its total time limit")
                error = FirstTokenTimeout(
                    f"no token from the LLM within {self.settings.timeout:g} s"
                )
            delay = policy.delay(error, retries)
            if delay is None or trio.current_time() + delay >= total_deadline:
                raise error
            log.warning(
                "LLM attempt %d for %s failed (%s), retrying in %.2f s",
                retries + 1,
                model,
                error.message,
                delay,
            )
            with trio.move_on_at(total_deadline):
                await policy.sleep(delay)
            retries += 1
            self.metrics.record_retry(model)

    async def _open(self, content: bytes, model: str, pacing: StreamPacing | None) -> _Upstream:
        """One attempt: send the request and read up to the first delta."""
        # A bare Request: ``build_request`` would merge the client's default headers, cookies
        # and params into every call, none of which this client uses.
        request = httpx.Request("POST", self._url, content=content, headers=self._headers)
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise error_from_transport(exc) from exc
        upstream = _Upstream(response, model, pacing)
        opened = False
        try:
            if response.status_code != 200:
                body = await upstream.read_body()
                raise error_from_response(response.status_code, body, response.headers)
            if response.headers.get("content-type", "").startswith("application/json"):
                raise _error_from_json_200(await upstream.read_body(), response.headers)
            await upstream.fill()
            opened = True
            return upstream
        finally:
            if not opened:
                await upstream.aclose()


def _error_from_json_200(body: bytes, headers: httpx.Headers) -> LLMError:
    """A 200 that is JSON instead of an event stream: an error object, or a broken upstream."""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and "error" in parsed:
        return error_from_event(parsed["error"], retry_after=parse_retry_after(headers))
    return ProtocolError("expected an event stream, got a JSON body")
