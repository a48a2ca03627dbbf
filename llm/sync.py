"""A blocking facade over the async client, for scripts and CLIs.

Each call runs the same async code in its own ``trio.run`` with a fresh httpx
client and limiter; metrics persist across calls. Not for use inside a Trio run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import pydantic
import trio

from llm.client import OpenRouterClient
from llm.http import make_http_client
from llm.limiter import LLMLimiter
from llm.metrics import LLMMetrics
from llm.settings import LLMSettings
from llm.types import ChatMessage, Completion

T = TypeVar("T")
M = TypeVar("M", bound=pydantic.BaseModel)


class BlockingClient:
    """``complete()``, ``structured()`` and ``stream()`` (text collected) that block."""

    def __init__(self, settings: LLMSettings, *, metrics: LLMMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else LLMMetrics()

    def __repr__(self) -> str:
        return f"BlockingClient(base_url={self.settings.base_url!r})"

    def _run(self, call: Callable[[OpenRouterClient], Awaitable[T]]) -> T:
        settings = self.settings

        async def main() -> T:
            async with make_http_client(settings) as http:
                limiter = LLMLimiter(
                    settings.max_concurrency,
                    per_user=settings.max_per_user,
                    queue_timeout=settings.queue_timeout,
                )
                return await call(OpenRouterClient(http, limiter, settings, self.metrics))

        return trio.run(main)

    def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        """The whole reply to ``messages``."""
        return self._run(
            lambda c: c.complete(
                messages, model=model, temperature=temperature, max_tokens=max_tokens
            )
        )

    def structured(
        self, messages: Sequence[ChatMessage], schema: type[M], *, model: str | None = None
    ) -> M:
        """A reply parsed into ``schema`` (see ``OpenRouterClient.structured``)."""
        return self._run(lambda c: c.structured(messages, schema, model=model))

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        on_delta: Callable[[str], object] | None = None,
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> str:
        """Stream a reply, calling ``on_delta`` for each piece; return the whole text."""

        async def call(client: OpenRouterClient) -> str:
            async with client.stream(
                messages, model=model, temperature=temperature, max_tokens=max_tokens
            ) as chat:
                async for delta in chat:
                    if on_delta is not None:
                        on_delta(delta)
            return chat.text

        return self._run(call)
