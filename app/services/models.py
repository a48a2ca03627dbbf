"""Which models a user may name: API.md's model-id rule as a 400 ``invalid_request``.

Call ``chosen_model`` wherever a request or a stored setting names a model (character
generation today, per-character settings later); the rule itself is ``llm.check_model_id``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import llm
from app.errors import InvalidRequest


def chosen_model(
    model: str | None, allowed: Collection[str], *, field: str = "model"
) -> str | None:
    """``model`` if API.md allows it (1–100 of ``[A-Za-z0-9._:/-]``; one of ``allowed`` =
    ``FASTNPC_MODELS`` when that is set); None stays None (the default model). Otherwise
    ``InvalidRequest`` naming ``field``."""
    if model is None:
        return None
    try:
        return llm.check_model_id(model, allowed)
    except llm.InvalidModelId as exc:
        raise InvalidRequest(
            str(exc), details=[{"loc": [field], "msg": str(exc), "type": "model_id"}]
        ) from None


def check_settings_models(
    model: str | None, fallback_models: Sequence[str], allowed: Collection[str]
) -> None:
    """A character's ``settings.model`` and ``settings.fallback_models`` against the rule
    (``InvalidRequest`` naming ``settings.model`` or ``settings.fallback_models``)."""
    chosen_model(model, allowed, field="settings.model")
    for fallback in fallback_models:
        chosen_model(fallback, allowed, field="settings.fallback_models")
