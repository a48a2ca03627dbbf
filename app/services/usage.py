"""Per-user LLM usage and monthly token quotas.

``UsageService`` is the ``llm.UsageSink`` of the process's client: one upsert per successful
call, keyed by the ``user=`` the services pass (``str(user_id)``). ``check_quota`` is called
by the routes that call the LLM before they store anything: a user whose tokens this month
(UTC) reached their quota gets 429 ``quota_exceeded`` until the month ends, so the call that
crosses the quota completes and the next one is refused.

A generation that saves its reply anyway (chat) opens `deferred_usage` around its LLM call:
the call's usage is then written by the reply's save transaction (`DeferredUsage.store`)
instead of a transaction of its own, still before the reply is answered.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection

import llm
from app.errors import QuotaExceeded
from storage import Database, StorageError, usage, user_settings
from storage.usage import DailyUsage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Quota:
    monthly_tokens: int | None
    used: int  # this calendar month (UTC)


@dataclass(frozen=True)
class UsageReport:
    days: list[DailyUsage]
    quota: Quota


@dataclass
class DeferredUsage:
    """Usage heard while `deferred_usage` is open in this task, for one later transaction."""

    calls: list[tuple[int, date, str, llm.Usage]] = field(default_factory=list)

    def store(self, conn: Connection) -> None:
        """Inside a write transaction: record every call heard (then forget them)."""
        for user_id, day, model, used in self.calls:
            usage.record_usage(
                conn,
                user_id,
                day,
                model,
                prompt_tokens=used.prompt_tokens,
                completion_tokens=used.completion_tokens,
                cost=used.cost,
            )
        self.calls.clear()


_deferred: ContextVar[DeferredUsage | None] = ContextVar("deferred_usage", default=None)


@contextmanager
def deferred_usage() -> Iterator[DeferredUsage]:
    """While open, `UsageService.record` in this task keeps usage in the returned object
    instead of writing it; the caller must `store` it in a transaction."""
    deferred = DeferredUsage()
    token = _deferred.set(deferred)
    try:
        yield deferred
    finally:
        _deferred.reset(token)


def quota_exceeded(conn: Connection, user_id: int, now: datetime) -> QuotaExceeded | None:
    """Inside a transaction: the 429 for a user whose tokens this month (UTC) reached their
    quota, else None."""
    limit = user_settings.get_settings(conn, user_id).monthly_token_quota
    if limit is None:
        return None
    used = usage.tokens_since(conn, user_id, month_start(now.date()))
    if used < limit:
        return None
    return QuotaExceeded(
        f"the monthly token quota ({limit}) is used up",
        retry_after=(next_month_start(now) - now).total_seconds(),
        details={"monthly_tokens": limit, "used": used},
    )


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month_start(now: datetime) -> datetime:
    """Midnight UTC of the first day of the month after ``now``."""
    first = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first + timedelta(days=32)).replace(day=1)


class UsageService:
    """Records usage (``llm.UsageSink``), reports it, enforces quotas."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, user: str | None, model: str, used: llm.Usage) -> None:
        """One upsert on the user's (today, model) row; calls without a user are not counted.
        A storage failure is logged, never raised (the reply matters more than its count)."""
        if user is None or not user.isdigit():
            return
        deferred = _deferred.get()
        if deferred is not None:
            deferred.calls.append((int(user), datetime.now(UTC).date(), model, used))
            return
        try:
            await self._db.write(
                usage.record_usage,
                int(user),
                datetime.now(UTC).date(),
                model,
                prompt_tokens=used.prompt_tokens,
                completion_tokens=used.completion_tokens,
                cost=used.cost,
            )
        except StorageError as exc:
            log.warning("usage of user %s on %s not recorded: %s", user, model, exc)

    async def quota(self, user_id: int) -> Quota:
        now = datetime.now(UTC)
        settings = await self._db.read(user_settings.get_settings, user_id)
        used = await self._db.read(usage.tokens_since, user_id, month_start(now.date()))
        return Quota(settings.monthly_token_quota, used)

    async def check_quota(self, user_id: int) -> None:
        """429 ``quota_exceeded`` (``Retry-After``: until next month) once the user's tokens
        this month reached their quota."""
        exceeded = await self._db.read(quota_exceeded, user_id, datetime.now(UTC))
        if exceeded is not None:
            raise exceeded

    async def report(self, user_id: int, days: int) -> UsageReport:
        """The user's rows of the last ``days`` days (today included) and their quota."""
        rows = await self._db.read(usage.list_usage, user_id, _since(days))
        return UsageReport(rows, await self.quota(user_id))

    async def all_users(self, days: int) -> list[DailyUsage]:
        """Every user's rows of the last ``days`` days."""
        return await self._db.read(usage.list_usage, None, _since(days))

    async def set_quota(self, user_id: int, monthly_tokens: int | None) -> None:
        await self._db.write(
            user_settings.set_settings, user_id, monthly_token_quota=monthly_tokens
        )


def _since(days: int) -> date:
    return datetime.now(UTC).date() - timedelta(days=days - 1)
