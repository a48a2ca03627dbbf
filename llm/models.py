"""Model ids: the one rule for which ``model`` strings the service accepts (API.md).

"Model ids: 1–100 of ``[A-Za-z0-9._:/-]``; if ``FASTNPC_MODELS`` is set, only those (else
400)." ``check_model_id`` applies it wherever a user names a model (a generation request, a
character's settings); ``MODEL_ID_PATTERN`` is the same format for JSON schemas.
"""

from __future__ import annotations

import re
from collections.abc import Collection

MODEL_ID_MAX_LENGTH = 100
MODEL_ID_PATTERN = rf"^[A-Za-z0-9._:/-]{{1,{MODEL_ID_MAX_LENGTH}}}$"
_MODEL_ID = re.compile(rf"[A-Za-z0-9._:/-]{{1,{MODEL_ID_MAX_LENGTH}}}")


class InvalidModelId(ValueError):
    """A model id that is malformed or not among the configured ones; the message says which
    and is meant for the client."""


def is_model_id(model: str) -> bool:
    """Whether ``model`` is well-formed: 1–100 of ``[A-Za-z0-9._:/-]``."""
    return _MODEL_ID.fullmatch(model) is not None


def check_model_id(model: str, allowed: Collection[str] = ()) -> str:
    """``model`` if it is well-formed and, when ``allowed`` is not empty, one of ``allowed``
    (``FASTNPC_MODELS``); otherwise raise ``InvalidModelId`` with a message for the client."""
    if not is_model_id(model):
        raise InvalidModelId(
            f"invalid model id {model[:120]!r}: use 1-{MODEL_ID_MAX_LENGTH} of letters, "
            "digits and . _ : / -"
        )
    if allowed and model not in allowed:
        raise InvalidModelId(
            f"model {model!r} is not available here; choose one of: {', '.join(allowed)}"
        )
    return model
