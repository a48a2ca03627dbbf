"""Streaming one character reply into a run's event log, and saving what came of it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import trio

import llm
from app.services.character_llm import ReplyOptions
from app.services.runs import Run


@dataclass
class ReplyOutcome:
    text: str
    status: str  # complete | interrupted | error
    error: llm.LLMError | None
    model: str | None = None  # the model that answered (None when no stream opened)


async def stream_reply(
    client: llm.OpenRouterClient,
    run: Run,
    messages: Sequence[llm.ChatMessage],
    *,
    user: str,
    tag: dict[str, Any],
    cancel_scope: trio.CancelScope,
    options: ReplyOptions | None = None,
) -> ReplyOutcome:
    """Relay the model's deltas into `run` as `delta` events tagged with `tag`.

    Runs inside `cancel_scope`: cancelling it (stop, shutdown) ends the stream and the partial
    text comes back with status `interrupted`. A provider failure comes back as `error` with the
    partial text; it is never presented as a normal reply. ``options``: the character's model,
    temperature and fallbacks; the outcome names the model that answered.
    """
    parts: list[str] = []
    error: llm.LLMError | None = None
    model: str | None = None
    kwargs = (options or ReplyOptions()).stream_kwargs(client.settings.model)
    with cancel_scope:
        try:
            async with client.stream(messages, user=user, **kwargs) as stream:
                model = stream.model
                async for delta in stream.batches():
                    model = stream.model
                    parts.append(delta)
                    run.publish("delta", {**tag, "text": delta})
        except llm.LLMError as exc:
            error = exc
    text = "".join(parts)
    if cancel_scope.cancelled_caught:
        return ReplyOutcome(text, "interrupted", None, model)
    if error is not None:
        return ReplyOutcome(text, "error", error, model)
    return ReplyOutcome(text, "complete", None, model)
