"""A character's own LLM settings as the options of its replies (API.md "Settings").

`reply_options` turns ``settings.model``/``temperature``/``fallback_models`` into the
arguments of ``OpenRouterClient.stream``: the model (else the server default), the temperature
(else none sent) and, with fallbacks, OpenRouter's ``models`` list ``[model, *fallbacks]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from storage.records import Character


@dataclass(frozen=True)
class ReplyOptions:
    """What a character's reply asks the provider for (None/empty: the server's defaults)."""

    model: str | None = None
    temperature: float | None = None
    fallback_models: tuple[str, ...] = ()

    def stream_kwargs(self, default_model: str) -> dict[str, Any]:
        """Keyword arguments of ``OpenRouterClient.stream``."""
        model = self.model or default_model
        kwargs: dict[str, Any] = {"model": model, "temperature": self.temperature}
        if self.fallback_models:
            kwargs["models"] = [model, *(m for m in self.fallback_models if m != model)]
        return kwargs


def reply_options(character: Character) -> ReplyOptions:
    """The character's reply options from its settings."""
    settings = character.settings
    return ReplyOptions(settings.model, settings.temperature, tuple(settings.fallback_models))
