"""Per-user settings: language, default model and the monthly token quota (one row per user,
absent until first set)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from .direct import Direct
from .inserts import insert_or_ignore
from .records import Language
from .schema import user_settings
from .unchanged import UNCHANGED

__all__ = ["UNCHANGED", "UserSettings", "get_settings", "set_settings"]


@dataclass(frozen=True, slots=True)
class UserSettings:
    language: Language | None = None
    default_model: str | None = None
    monthly_token_quota: int | None = None  # tokens per calendar month (UTC); None: no limit


# read by every chat send (the quota): on the driver's cursor, see ``storage.direct``
_SETTINGS = Direct(
    select(
        user_settings.c.language,
        user_settings.c.default_model,
        user_settings.c.monthly_token_quota,
    ).where(user_settings.c.user_id == bindparam("user_id"))
)


def get_settings(conn: Connection, user_id: int) -> UserSettings:
    """The user's settings (all None if never set)."""
    found = _SETTINGS.rows(conn, {"user_id": user_id})
    if not found:
        return UserSettings()
    return UserSettings(*found[0])


def set_settings(
    conn: Connection,
    user_id: int,
    *,
    language: Language | None = UNCHANGED,
    default_model: str | None = UNCHANGED,
    monthly_token_quota: int | None = UNCHANGED,
) -> UserSettings:
    """Set the given fields (``UNCHANGED`` keeps a value); the settings after the change."""
    values: dict[str, Any] = {
        name: value
        for name, value in (
            ("language", language),
            ("default_model", default_model),
            ("monthly_token_quota", monthly_token_quota),
        )
        if value is not UNCHANGED
    }
    if values:
        insert_or_ignore(conn, user_settings, {"user_id": user_id}, index_elements=["user_id"])
        conn.execute(
            update(user_settings).where(user_settings.c.user_id == user_id).values(**values)
        )
    return get_settings(conn, user_id)
