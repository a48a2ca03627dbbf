"""The plan's async LLM layer (its ``fastnpc/llm/openrouter.py`` "after" version).

Step 1 of the plan: ``_async_client()``, ``get_openrouter_completion_async()``,
``get_openrouter_structured_json_async()`` and ``stream_openrouter_text_async()`` on
``openai.AsyncOpenAI``, with an ``asyncio.Semaphore`` bounding concurrent calls (the plan's
"添加并发限制" mitigation).

One deviation in the reference's favour: the plan's ``_async_client()`` builds a new
``AsyncOpenAI`` on every call; here it is built once per process and reused (set
``per_call_client=True`` to get the plan's literal behaviour). Errors are raised instead of
being returned as reply text, so the routes can report them as errors.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam
from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


@dataclass
class OpenRouterAsync:
    """Process-wide LLM access: the AsyncOpenAI client and the concurrency semaphore."""

    base_url: str
    api_key: str
    model: str = "z-ai/glm-4-32b"
    max_concurrency: int = 2000
    per_call_client: bool = False
    _client: AsyncOpenAI | None = field(default=None, init=False, repr=False)
    _semaphore: asyncio.Semaphore | None = field(default=None, init=False, repr=False)

    @property
    def semaphore(self) -> asyncio.Semaphore:
        """The LLM concurrency limit (created lazily inside the running loop)."""
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
        return self._semaphore

    def _async_client(self) -> AsyncOpenAI:
        if self.per_call_client:
            return AsyncOpenAI(base_url=self.base_url, api_key=self.api_key)
        if self._client is None:
            self._client = AsyncOpenAI(base_url=self.base_url, api_key=self.api_key)
        return self._client

    async def aclose(self) -> None:
        """Close the shared client, if one was built."""
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def get_openrouter_completion_async(
        self, messages: Sequence[ChatCompletionMessageParam], model: str | None = None
    ) -> str:
        """Non-streamed completion: the reply text."""
        async with self.semaphore:
            completion = await self._async_client().chat.completions.create(
                model=model or self.model, messages=list(messages)
            )
        return completion.choices[0].message.content or ""

    async def get_openrouter_structured_json_async(
        self,
        messages: Sequence[ChatCompletionMessageParam],
        schema: type[M],
        model: str | None = None,
    ) -> M:
        """Structured call with ``response_format`` json_schema, validated with pydantic."""
        response_format: Any = {
            "type": "json_schema",
            "json_schema": {
                "name": schema.__name__,
                "strict": True,
                "schema": schema.model_json_schema(),
            },
        }
        async with self.semaphore:
            completion = await self._async_client().chat.completions.create(
                model=model or self.model,
                messages=list(messages),
                response_format=response_format,
            )
        content = completion.choices[0].message.content or ""
        return schema.model_validate(json.loads(_strip_fences(content)))

    async def stream_openrouter_text_async(
        self, messages: Sequence[ChatCompletionMessageParam], model: str | None = None
    ) -> AsyncIterator[str]:
        """Async generator of text deltas, holding a semaphore slot for the whole stream."""
        async with self.semaphore:
            stream = await self._async_client().chat.completions.create(
                model=model or self.model, messages=list(messages), stream=True
            )
            async for chunk in stream:
                if not chunk.choices:
                    continue
                delta = chunk.choices[0].delta.content or ""
                if delta:
                    yield delta


def _strip_fences(text: str) -> str:
    """Models may wrap JSON in code fences or prose: keep the outermost object."""
    start, end = text.find("{"), text.rfind("}")
    return text[start : end + 1] if start != -1 and end > start else text
