"""The LLM limits of the whole service, shared by every process through Redis.

`SharedLLMLimiter` implements `llm.Limiter` (the interface the LLM client and the admin view
take), so `llm` knows nothing of Redis. Slots are members of a sorted set scored by lease
expiry (`slot_scripts` describes the keys); one task per process renews the leases of all its
holders and waiters in one round trip every lease/3, so the slots of a process that died come
back within the lease. Waiting is FIFO across processes (a queue ordered by ticket, waiters
whose user is at their bound skipped); a release is announced on a pub/sub channel, and each
process then makes one admission attempt for all its waiters (the renewal tick doubles as a
slow poll, for slots freed by expiry).

While the link to Redis is lost, calls use a per-process `llm.LLMLimiter` of the same sizes
(and waiters move to it); once the link is back new calls use the shared pool again. A slot is
always released to the pool it came from (a shared one that cannot be released while Redis is
down is reclaimed when its lease runs out).
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio

from app.services import slot_scripts
from app.services.redis_link import REDIS_ERRORS, RedisLink
from llm import LLMLimiter, Overloaded
from llm.limiter import OVERLOADED_RETRY_AFTER

log = logging.getLogger(__name__)

# Bound on releasing a slot or withdrawing a waiter (shielded: it runs while cancelled).
CLEANUP_WITHIN = 2.0


@dataclass(frozen=True)
class SlotKeys:
    """The Redis keys of the shared limiter (see `slot_scripts`)."""

    holders: str
    queue: str
    waiters: str
    users: str
    total: str
    ticket: str
    gone: str
    channel: str

    @classmethod
    def of(cls, link: RedisLink) -> SlotKeys:
        return cls(*(link.key("llm", part) for part in cls.__dataclass_fields__))

    def admit(self) -> list[str]:
        return [*self.release()[:4], self.total, self.ticket, self.gone]

    def release(self) -> list[str]:
        return [self.holders, self.queue, self.waiters, self.users, self.gone]


class _Waiter:
    __slots__ = ("granted", "settled")

    def __init__(self) -> None:
        self.settled = trio.Event()
        self.granted = False  # admitted to the shared pool (else: moved to the local one)


class SharedLLMLimiter:
    """`llm.Limiter` over Redis: ``total`` slots for the service, ``per_user`` per user.

    ``total`` is the configured size: the first process sets it in Redis, a live `resize`
    changes it for every process. `run` (started in the service nursery) keeps the leases,
    listens for releases and admits waiters.
    """

    def __init__(
        self,
        link: RedisLink,
        total: int,
        *,
        per_user: int,
        queue_timeout: float,
        lease: float,
    ) -> None:
        if per_user < 1 or total < 1:
            raise ValueError("total and per_user must be at least 1")
        self.link = link
        self.fallback = LLMLimiter(total, per_user=per_user, queue_timeout=queue_timeout)
        self._total = total
        self._per_user = per_user
        self._queue_timeout = queue_timeout
        self.lease = lease
        self._lease_ms = max(1, round(lease * 1000))
        self._total_ttl_ms = 3 * self._lease_ms
        self._keys = SlotKeys.of(link)
        self._process = uuid.uuid4().hex[:12]
        self._serial = itertools.count()
        self._held: set[str] = set()  # our members holding shared slots
        self._waiters: dict[str, _Waiter] = {}  # our members queued in Redis
        self._users: Counter[str] = Counter()  # calls held or waiting here, by user
        self._attempt = trio.Event()  # set: the admitter should try again
        self._listening: trio.CancelScope | None = None
        self._resize_pending = False  # a resize not yet stored in Redis
        client = link.client
        self._admit = client.register_script(slot_scripts.ADMIT)
        self._release = client.register_script(slot_scripts.RELEASE)
        self._renew = client.register_script(slot_scripts.RENEW)
        self._statistics = client.register_script(slot_scripts.STATISTICS)
        self._resize = client.register_script(slot_scripts.RESIZE)

    # --- llm.Limiter ---------------------------------------------------------------------

    @asynccontextmanager
    async def slot(self, user: str | None) -> AsyncIterator[None]:
        """Hold one slot of the shared pool (the local one while Redis is lost)."""
        deadline = trio.current_time() + self._queue_timeout
        self._users[user or ""] += 1
        try:
            member = await self._acquire_shared(user, deadline)
            if member is not None:
                try:
                    yield
                finally:
                    await self._release_shared(member)
                return
            async with AsyncExitStack() as stack:
                entered = False
                with trio.move_on_at(deadline):
                    await stack.enter_async_context(self.fallback.slot(user))
                    entered = True
                if not entered:
                    raise _overloaded()
                yield
        finally:
            self._users[user or ""] -= 1
            if not self._users[user or ""]:
                del self._users[user or ""]

    async def resize(self, total: int) -> None:
        """Set the service-wide total (and this process's fallback) at once."""
        if total < 1:
            raise ValueError("total must be at least 1")
        self._total = total
        await self.fallback.resize(total)
        self._resize_pending = True
        await self._push_total()

    async def _push_total(self) -> None:
        """Store our total in Redis (a resize made while it was lost: once it is back)."""
        if self.link.up and self._resize_pending:
            try:
                await self._resize(
                    keys=[self._keys.total],
                    args=[self._total, self._total_ttl_ms, self._keys.channel],
                )
            except REDIS_ERRORS as exc:
                self.link.lost(exc)
            else:
                self._resize_pending = False

    async def statistics(self) -> dict[str, int]:
        """The shared pool's figures from Redis (this process's fallback while it is lost)."""
        if self.link.up:
            try:
                figures: Any = await self._statistics(
                    keys=[self._keys.holders, self._keys.waiters, self._keys.total],
                    args=[self._total],
                )
            except REDIS_ERRORS as exc:
                self.link.lost(exc)
            else:
                total, borrowed, waiting = (int(f) for f in figures)
                return {"total": total, "borrowed": borrowed, "waiting": waiting}
        return await self.fallback.statistics()

    @property
    def active_users(self) -> int:
        """Users with calls held or waiting in this process."""
        return len(self._users)

    # --- acquiring and releasing ------------------------------------------------------------

    async def _acquire_shared(self, user: str | None, deadline: float) -> str | None:
        """Our member once it holds a shared slot; None when Redis is lost (use the local
        pool); `Overloaded` past the deadline."""
        if not self.link.up:
            return None
        member = f"{self._process}:{next(self._serial)}|{user or ''}"
        taken = False
        try:
            with trio.move_on_at(deadline):
                admitted = await self._call_admit([member])
                if member not in admitted:
                    if not self.link.up:
                        return None  # lost meanwhile: nobody would admit it
                    waiter = self._waiters[member] = _Waiter()
                    await waiter.settled.wait()
                    if not waiter.granted:
                        return None
                taken = True
                self._held.add(member)
                return member
            raise _overloaded()
        except REDIS_ERRORS as exc:
            self.link.lost(exc)
            return None
        finally:
            self._waiters.pop(member, None)
            if not taken:
                # queued, or admitted by a concurrent attempt: give it back
                await self._release_shared(member)

    async def _release_shared(self, member: str) -> None:
        self._held.discard(member)
        if not self.link.up:
            return  # its lease runs out
        with trio.move_on_after(CLEANUP_WITHIN, shield=True):
            try:
                await self._release(
                    keys=self._keys.release(), args=[self._keys.channel, self._lease_ms, member]
                )
            except REDIS_ERRORS as exc:
                self.link.lost(exc)

    async def _call_admit(self, members: Sequence[str]) -> list[str]:
        admitted: Any = await self._admit(
            keys=self._keys.admit(),
            args=[self._per_user, self._total, self._lease_ms, self._keys.channel, *members],
        )
        return [m.decode() if isinstance(m, bytes) else str(m) for m in admitted]

    # --- background -------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Renew leases, listen for releases, admit waiters, follow the link (until cancelled)."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._renew_leases)
            nursery.start_soon(self._admit_waiters)
            nursery.start_soon(self._listen)
            nursery.start_soon(self._follow_link)
            task_status.started()

    async def _renew_leases(self) -> None:
        while True:
            await self._push_total()
            if self.link.up:
                members = [*self._held, *self._waiters]
                try:
                    total: Any = await self._renew(
                        keys=[self._keys.holders, self._keys.waiters, self._keys.total],
                        args=[self._lease_ms, self._total_ttl_ms, self._total, *members],
                    )
                except REDIS_ERRORS as exc:
                    self.link.lost(exc)
                else:
                    await self._follow_total(int(total))
                    if self._waiters:
                        self._attempt.set()  # slots may have come back by expiry
            await trio.sleep(self.lease / 3)

    async def _follow_total(self, total: int) -> None:
        """Another process resized: so does our fallback."""
        if total != self._total and total >= 1:
            self._total = total
            await self.fallback.resize(total)

    async def _admit_waiters(self) -> None:
        """One admission attempt for all our waiters each time something may have freed."""
        while True:
            await self._attempt.wait()
            self._attempt = trio.Event()
            pending = [m for m, w in self._waiters.items() if not w.settled.is_set()]
            if not pending or not self.link.up:
                continue
            try:
                admitted = await self._call_admit(pending)
            except REDIS_ERRORS as exc:
                self.link.lost(exc)
                self._to_local()
                continue
            for member in admitted:
                if (waiter := self._waiters.get(member)) is not None:
                    waiter.granted = True
                    waiter.settled.set()

    async def _listen(self) -> None:
        """Release notices from every process wake our admitter."""
        while True:
            if not self.link.up:
                await self.link.wait_changed()
                continue
            with trio.CancelScope() as self._listening:
                try:
                    async with self.link.client.pubsub(
                        channels=[self._keys.channel], ignore_subscribe_messages=True
                    ) as pubsub:
                        self._attempt.set()  # notices may have been missed meanwhile
                        async for _ in pubsub:
                            self._attempt.set()
                except* REDIS_ERRORS as group:
                    self.link.lost(group.exceptions[0])
                except* Exception as group:
                    # best effort: the renewal tick still retries admission meanwhile
                    log.warning("release notices interrupted: %r", group.exceptions[0])
            self._listening = None
            if self.link.up:
                await trio.sleep(min(1.0, self.lease / 3))  # ended without losing the link

    async def _follow_link(self) -> None:
        while True:
            await self.link.wait_changed()
            if self.link.up:
                self._attempt.set()
            else:
                self._to_local()
                if self._listening is not None:
                    self._listening.cancel()

    def _to_local(self) -> None:
        """Redis is lost: our waiters move to the local pool (their queue places expire)."""
        for waiter in self._waiters.values():
            waiter.settled.set()


def _overloaded() -> Overloaded:
    return Overloaded(
        "too many LLM calls in progress; try again shortly", retry_after=OVERLOADED_RETRY_AFTER
    )
