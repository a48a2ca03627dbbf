"""``UNCHANGED``: the default of an update keyword whose stored value is kept."""

from __future__ import annotations

from typing import Any


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Any = _Unchanged()
