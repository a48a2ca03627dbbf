"""OpenRouter-shaped response bodies: SSE events of ``chat.completion.chunk`` and full completions.

`EventEncoder` pre-renders the JSON around a content delta once per response, so a content event
costs one ``json.dumps`` of the piece and a concatenation (the fake serves thousands of streams).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

KEEPALIVE_COMMENT = ": OPENROUTER PROCESSING"
PROVIDER = "Fake"


@dataclass(frozen=True)
class UsageReport:
    """Token counts and cost of one response."""

    prompt_tokens: int
    completion_tokens: int
    cost: float

    def to_json(self) -> dict[str, Any]:
        """OpenRouter's ``usage`` object."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "cost": self.cost,
        }


def error_object(code: int | str, message: str, metadata: dict[str, Any] | None) -> dict[str, Any]:
    """OpenRouter's ``error`` object."""
    error: dict[str, Any] = {"code": code, "message": message}
    if metadata is not None:
        error["metadata"] = metadata
    return error


_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_dumps = _COMPACT.encode


class EventEncoder:
    """Renders the SSE events of one streamed response as bytes."""

    def __init__(self, generation_id: str, model: str, created: int, line_ending: str) -> None:
        self._end = (line_ending * 2).encode()
        self._header = {
            "id": generation_id,
            "provider": PROVIDER,
            "model": model,
            "object": "chat.completion.chunk",
            "created": created,
        }
        head = _dumps(self._header)[:-1]
        self._content_prefix = (
            f'data: {head},"choices":[{{"index":0,"delta":{{"role":"assistant","content":'
        ).encode()
        self._content_suffix = (
            b'},"finish_reason":null,"native_finish_reason":null,"logprobs":null}]}' + self._end
        )
        self.keepalive = KEEPALIVE_COMMENT.encode() + self._end
        self.done = b"data: [DONE]" + self._end

    def content(self, piece: str) -> bytes:
        """A chunk whose delta carries ``piece``."""
        return self._content_prefix + _dumps(piece).encode() + self._content_suffix

    def _event(self, body: dict[str, Any]) -> bytes:
        return b"data: " + _dumps({**self._header, **body}).encode() + self._end

    @staticmethod
    def _choice(finish_reason: str | None) -> dict[str, Any]:
        return {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "finish_reason": finish_reason,
            "native_finish_reason": finish_reason,
            "logprobs": None,
        }

    def finish(self, reason: str) -> bytes:
        """The chunk carrying ``finish_reason`` with an empty delta."""
        return self._event({"choices": [self._choice(reason)]})

    def usage(self, usage: UsageReport, *, empty_choices: bool) -> bytes:
        """The usage chunk: ``choices`` empty or one choice with an empty delta."""
        choices = [] if empty_choices else [self._choice(None)]
        return self._event({"choices": choices, "usage": usage.to_json()})

    def error(self, code: int | str, message: str, metadata: dict[str, Any] | None) -> bytes:
        """A mid-stream error event: top-level ``error`` and ``finish_reason: "error"``."""
        return self._event(
            {"error": error_object(code, message, metadata), "choices": [self._choice("error")]}
        )


def completion_body(
    *,
    generation_id: str,
    model: str,
    created: int,
    text: str,
    finish_reason: str,
    usage: UsageReport,
    error: dict[str, Any] | None = None,
) -> bytes:
    """A non-streamed ``chat.completion`` JSON body (with ``error`` when generation failed)."""
    body: dict[str, Any] = {
        "id": generation_id,
        "provider": PROVIDER,
        "model": model,
        "object": "chat.completion",
        "created": created,
        "choices": [
            {
                "index": 0,
                "logprobs": None,
                "finish_reason": finish_reason,
                "native_finish_reason": finish_reason,
                "message": {"role": "assistant", "content": text, "refusal": None},
            }
        ],
        "usage": usage.to_json(),
    }
    if error is not None:
        body["error"] = error
    return _dumps(body).encode()


def error_body(code: int | str, message: str, metadata: dict[str, Any] | None = None) -> bytes:
    """OpenRouter's error JSON ``{"error": {"code", "message", "metadata"?}}``."""
    return _dumps({"error": error_object(code, message, metadata)}).encode()
