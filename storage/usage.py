"""LLM usage per user, per UTC day, per model: one upsert per call.

Days are ``YYYY-MM-DD`` text (UTC), so ranges compare as strings on both backends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Connection, Insert, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .direct import Direct, bound
from .schema import usage_daily

__all__ = ["DailyUsage", "list_usage", "record_usage", "tokens_since"]

_KEY = ["user_id", "day", "model"]


@dataclass(frozen=True, slots=True)
class DailyUsage:
    user_id: int
    day: date
    model: str
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost: float


def record_usage(
    conn: Connection,
    user_id: int,
    day: date,
    model: str,
    *,
    prompt_tokens: int,
    completion_tokens: int,
    cost: float,
) -> None:
    """Add one call and its tokens and cost to the user's row for (day, model)."""
    values = {
        "user_id": user_id,
        "day": day.isoformat(),
        "model": model,
        "calls": 1,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "cost": cost,
    }
    _UPSERT.rows(conn, values)


def _upsert(dialect: str) -> Insert:
    """The (day, model) upsert for one dialect (it runs after every LLM call)."""
    insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
    stmt = insert(usage_daily).values(bound(usage_daily.c))
    excluded = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=_KEY,
        set_={
            "calls": usage_daily.c.calls + excluded.calls,
            "prompt_tokens": usage_daily.c.prompt_tokens + excluded.prompt_tokens,
            "completion_tokens": usage_daily.c.completion_tokens + excluded.completion_tokens,
            "cost": usage_daily.c.cost + excluded.cost,
        },
    )


_UPSERT = Direct(_upsert)  # on the driver's cursor, see ``storage.direct``


def list_usage(conn: Connection, user_id: int | None, since: date) -> list[DailyUsage]:
    """Rows from ``since`` on (every user's when ``user_id`` is None), newest day first, then
    by user and model."""
    query = select(usage_daily).where(usage_daily.c.day >= since.isoformat())
    if user_id is not None:
        query = query.where(usage_daily.c.user_id == user_id)
    query = query.order_by(usage_daily.c.day.desc(), usage_daily.c.user_id, usage_daily.c.model)
    return [
        DailyUsage(
            row.user_id,
            date.fromisoformat(row.day),
            row.model,
            row.calls,
            row.prompt_tokens,
            row.completion_tokens,
            float(row.cost),
        )
        for row in conn.execute(query)
    ]


def tokens_since(conn: Connection, user_id: int, since: date) -> int:
    """Prompt plus completion tokens the user spent from ``since`` on."""
    total = conn.execute(
        select(func.sum(usage_daily.c.prompt_tokens + usage_daily.c.completion_tokens)).where(
            usage_daily.c.user_id == user_id, usage_daily.c.day >= since.isoformat()
        )
    ).scalar_one()
    return int(total or 0)
