"""OpenRouter's wire protocol: error mapping and the per-attempt stream state.

Chunks are parsed with ``orjson.loads`` and plain dict access (no models per
chunk: this runs once per delta on every stream).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from llm.errors import (
    AuthenticationError,
    BadRequest,
    LLMError,
    PaymentRequired,
    ProtocolError,
    RateLimited,
    UpstreamUnavailable,
)
from llm.retry import parse_retry_after
from llm.types import Completion, Usage

_MAX_MESSAGE = 500

# In-stream string codes that name an HTTP status (OpenAI/OpenRouter spellings).
_STRING_CODES = {
    "rate_limit_exceeded": 429,
    "insufficient_quota": 402,
    "invalid_api_key": 401,
    "server_error": 500,
    "service_unavailable": 503,
    "timeout": 408,
}


def error_for_status(status: int, message: str, *, retry_after: float | None = None) -> LLMError:
    """The ``LLMError`` for an HTTP status (or a numeric in-stream error code)."""
    message = message[:_MAX_MESSAGE] or f"upstream returned HTTP {status}"
    cls: type[LLMError]
    if status in (401, 403):
        cls = AuthenticationError
    elif status == 402:
        cls = PaymentRequired
    elif status == 429:
        cls = RateLimited
    elif status == 408 or status >= 500:
        cls = UpstreamUnavailable
    elif 400 <= status < 500:
        cls = BadRequest
    else:
        cls = ProtocolError
    return cls(message, status=status, retry_after=retry_after)


def _message_of(error: Any) -> str:
    if isinstance(error, dict):
        message = error.get("message")
        if isinstance(message, str):
            return message
    return ""


def error_from_event(error: Any, *, retry_after: float | None = None) -> LLMError:
    """Map the top-level ``error`` object of a stream chunk (or a 200 body)."""
    code = error.get("code") if isinstance(error, dict) else None
    message = _message_of(error) or "upstream reported an error"
    status: int | None = None
    if isinstance(code, int) and not isinstance(code, bool):
        status = code
    elif isinstance(code, str):
        status = int(code) if code.isdigit() else _STRING_CODES.get(code)
    if status is None:
        return ProtocolError(f"upstream error ({code!r}): {message}"[:_MAX_MESSAGE])
    return error_for_status(status, message, retry_after=retry_after)


def error_from_response(status: int, body: bytes, headers: Mapping[str, str]) -> LLMError:
    """Map a non-success HTTP response (OpenRouter's ``{"error": {...}}`` JSON or anything)."""
    message = ""
    try:
        parsed = json.loads(body)
    except ValueError:
        message = body[:_MAX_MESSAGE].decode("utf-8", "replace").strip()
    else:
        if isinstance(parsed, dict):
            message = _message_of(parsed.get("error"))
    return error_for_status(status, message, retry_after=parse_retry_after(headers))


def error_from_transport(exc: httpx.TransportError) -> LLMError:
    """Map an httpx transport failure; network-level ones are retryable (status None)."""
    if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError | httpx.TimeoutException):
        return UpstreamUnavailable(f"connection to the LLM upstream failed: {type(exc).__name__}")
    return BadRequest(f"cannot reach the LLM upstream: {type(exc).__name__}: {exc}")


def usage_from(raw: Any) -> Usage | None:
    """A ``Usage`` from a chunk's ``usage`` object, if it has one."""
    if not isinstance(raw, dict):
        return None
    try:
        return Usage(
            prompt_tokens=int(raw.get("prompt_tokens") or 0),
            completion_tokens=int(raw.get("completion_tokens") or 0),
            cost=float(raw.get("cost") or 0.0),
        )
    except (TypeError, ValueError):
        return None


class StreamState:
    """What one streamed attempt has produced so far.

    ``handle_data`` takes the data of one SSE event; content deltas are queued
    in ``pending``; an ``error`` event raises; ``[DONE]`` sets ``done``.
    """

    __slots__ = ("pending", "done", "finish_reason", "usage", "model", "generation_id")

    def __init__(self, model: str) -> None:
        self.pending: deque[str] = deque()
        self.done = False
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.model = model
        self.generation_id: str | None = None

    def handle_data(self, data: str) -> None:
        """Consume one event's data; raise an ``LLMError`` for an in-stream error."""
        if data == "[DONE]":
            self.done = True
            return
        try:
            chunk = orjson.loads(data)
        except ValueError:
            raise ProtocolError("malformed stream chunk (not JSON)") from None
        if type(chunk) is not dict:
            raise ProtocolError("malformed stream chunk (not an object)")
        if "error" in chunk:
            raise error_from_event(chunk["error"])
        if self.generation_id is None:
            self._note_identity(chunk)
        choices = chunk.get("choices")
        if choices:
            try:
                choice = choices[0]
                delta = choice.get("delta")
                if delta:
                    content = delta.get("content")
                    if content and type(content) is str:
                        self.pending.append(content)
                reason = choice.get("finish_reason")
            except (AttributeError, KeyError, TypeError):
                raise ProtocolError("malformed stream chunk (bad choices)") from None
            if reason:
                if reason == "error":
                    raise ProtocolError("upstream ended the stream with finish_reason 'error'")
                self.finish_reason = str(reason)
        usage = chunk.get("usage")
        if usage:
            self.usage = usage_from(usage)

    def _note_identity(self, chunk: dict[str, Any]) -> None:
        generation_id = chunk.get("id")
        if isinstance(generation_id, str):
            self.generation_id = generation_id
        model = chunk.get("model")
        if isinstance(model, str) and model:
            self.model = model

    def finish_at_eof(self) -> None:
        """The body ended: fine after ``[DONE]`` or a finish reason, else a truncated stream."""
        if not self.done and self.finish_reason is None:
            raise ProtocolError("the stream ended without [DONE] or a finish reason")
        self.done = True

    def completion(self, text: str) -> Completion:
        """The finished ``Completion`` (call once the stream is done)."""
        return Completion(
            text=text,
            model=self.model,
            finish_reason=self.finish_reason or "stop",
            usage=self.usage,
            generation_id=self.generation_id,
        )
