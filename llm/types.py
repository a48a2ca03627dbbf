"""Values that cross the LLM client's boundary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypedDict


class ChatMessage(TypedDict):
    """One message of a chat prompt, in the OpenAI wire shape."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts and cost (USD, as OpenRouter reports it) of one completion."""

    prompt_tokens: int
    completion_tokens: int
    cost: float


@dataclass(frozen=True, slots=True)
class Completion:
    """A finished completion."""

    text: str
    model: str
    finish_reason: str
    usage: Usage | None
    generation_id: str | None
