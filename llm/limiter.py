"""Admission control for LLM calls: a global slot pool plus a per-user bound.

`Limiter` is what the client and the admin view need of one; `LLMLimiter` is the
per-process implementation. A service that runs several processes provides its own
(shared) implementation of the same protocol, so this package knows nothing about how.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

import trio

from llm.errors import Overloaded

# Hint for clients that were turned away (becomes the HTTP Retry-After).
OVERLOADED_RETRY_AFTER = 1.0


class Limiter(Protocol):
    """Slots for LLM calls: at most ``total`` at once, at most ``per_user`` per user."""

    def slot(self, user: str | None) -> AbstractAsyncContextManager[None]:
        """Hold one slot (and one of ``user``'s) for the block; ``Overloaded`` when none
        came within the queue timeout."""
        ...

    async def resize(self, total: int) -> None:
        """Change the number of slots at once; holders keep theirs."""
        ...

    async def statistics(self) -> dict[str, int]:
        """``{"total", "borrowed", "waiting"}``: slots, slots in use, calls queued for one."""
        ...

    @property
    def active_users(self) -> int:
        """Users with calls held or waiting here."""
        ...


class _UserEntry:
    __slots__ = ("limiter", "refs")

    def __init__(self, per_user: int) -> None:
        self.limiter = trio.CapacityLimiter(per_user)
        self.refs = 0  # holders plus waiters; the entry is dropped at zero


class LLMLimiter:
    """A process-wide ``trio.CapacityLimiter`` plus one per user.

    ``slot(user)`` waits for the user's own bound first, then for a global
    slot, and holds both for the whole call (including the stream). Waiting
    longer than ``queue_timeout`` in total raises ``Overloaded``. Per-user
    limiters exist only while that user has calls held or waiting.
    """

    def __init__(self, total: int, *, per_user: int, queue_timeout: float) -> None:
        if per_user < 1:
            raise ValueError("per_user must be at least 1")
        self._global = trio.CapacityLimiter(total)
        self._per_user = per_user
        self._queue_timeout = queue_timeout
        self._users: dict[str, _UserEntry] = {}
        self._waiting = 0

    @asynccontextmanager
    async def slot(self, user: str | None) -> AsyncIterator[None]:
        """Hold one LLM slot (and one of ``user``'s) for the duration of the block."""
        entry: _UserEntry | None = None
        key = user or ""
        if user is not None:
            entry = self._users.get(user)
            if entry is None:
                entry = self._users[user] = _UserEntry(self._per_user)
            entry.refs += 1
        borrower = object()  # one task may hold several slots (nested calls)
        held_user = held_global = False
        try:
            self._waiting += 1
            try:
                with trio.move_on_after(self._queue_timeout):
                    if entry is not None:
                        await entry.limiter.acquire_on_behalf_of(borrower)
                        held_user = True
                    await self._global.acquire_on_behalf_of(borrower)
                    held_global = True
            finally:
                self._waiting -= 1
            if not held_global:
                raise Overloaded(
                    "too many LLM calls in progress; try again shortly",
                    retry_after=OVERLOADED_RETRY_AFTER,
                )
            yield
        finally:
            if held_global:
                self._global.release_on_behalf_of(borrower)
            if entry is not None:
                if held_user:
                    entry.limiter.release_on_behalf_of(borrower)
                entry.refs -= 1
                if entry.refs == 0:
                    del self._users[key]

    async def resize(self, total: int) -> None:
        """Change the global slot count at once; calls already holding slots keep them."""
        if total < 1:
            raise ValueError("total must be at least 1")
        self._global.total_tokens = total

    async def statistics(self) -> dict[str, int]:
        """``{"total", "borrowed", "waiting"}``: slots, slots in use, calls queued for one."""
        return {
            "total": int(self._global.total_tokens),
            "borrowed": self._global.borrowed_tokens,
            "waiting": self._waiting,
        }

    @property
    def active_users(self) -> int:
        """Users that currently hold or wait for a slot."""
        return len(self._users)
