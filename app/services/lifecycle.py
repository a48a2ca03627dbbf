"""One generation lifecycle for every generation that belongs to a conversation.

    claim (database row, leased)  →  register (run registry + lease tracker)
    →  run in the service nursery  →  save and end the row  →  unregister  →  later work

The database row is the one source of truth for "a generation is in progress": a conversation
has at most one, across every server process. The process keeps its runs by generation id, so a
new generation of the same conversation never collides with one that is still finishing.

Ending the row and unregistering happen with no await between them: the save transaction ends
the row, and the moment it returns the run is forgotten, before any later work (memory
scheduling) runs. A claim that cannot be registered (the process is shutting down) is ended at
once, never left to its lease. When the database is down at save time the messages are handed
to the `ReplySpool`, which saves them (and ends the row) once it answers again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import trio
from sqlalchemy import Connection

from app.errors import Conflict, ServiceUnavailable
from app.services.event_relay import EventRelay
from app.services.events import EventLog, generation_event_base
from app.services.generations import GenerationTracker
from app.services.runs import Run, RunRegistry
from app.services.shielding import shielded_save
from app.services.spool import PendingMessage, ReplySpool, SpoolEntry, store_entry
from storage import Database, StorageError, StorageUnavailable, generations
from storage.records import Message
from storage.timestamps import utcnow

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
L = TypeVar("L")


@dataclass(frozen=True)
class Claim(Generic[T]):
    """A conversation's generation, claimed in the database, and what was prepared with it."""

    generation_id: int
    conversation_id: int
    prepared: T


@dataclass
class Saved(Generic[T]):
    """What `Generation.save` did: the stored messages and the extra result, or `kept` when the
    database was unavailable and the messages wait in the spool."""

    messages: list[Message]
    extra: T | None
    kept: bool = False


class Generation:
    """The handle a generation's body works with: its run (events, cancel scope) and saves."""

    def __init__(self, lifecycle: GenerationLifecycle, claim: Claim[Any], run: Run) -> None:
        self._lifecycle = lifecycle
        self.generation_id = claim.generation_id
        self.conversation_id = claim.conversation_id
        self.run = run
        self.ended = False

    async def save(
        self,
        pending: Sequence[PendingMessage],
        *,
        end: bool = False,
        extra: Callable[[Connection, list[Message]], T] | None = None,
    ) -> Saved[T]:
        """Store `pending` (and run `extra` with the stored messages) in one transaction,
        ending the generation row too when `end`. Survives cancellation (bounded). If the
        database is unavailable the messages are spooled and saved later: the result is
        `kept`."""
        if self.ended:
            raise RuntimeError("the generation has already ended")
        entry = SpoolEntry(list(pending), self.generation_id if end else None)

        def transaction(conn: Connection) -> tuple[list[Message], T | None]:
            stored = store_entry(conn, entry, replay=False)
            return stored, None if extra is None else extra(conn, stored)

        try:
            with shielded_save():
                stored, result = await self._lifecycle.db.write(transaction)
        except StorageUnavailable:
            if pending:
                with shielded_save():
                    await self._lifecycle.spool.keep(entry)
            if end:
                self._finish()  # the spool ends the row with the messages; else its lease does
            if not pending:
                raise
            log.warning(
                "database unavailable: %d message(s) of conversation %d kept for a later save",
                len(pending),
                self.conversation_id,
            )
            return Saved([], None, kept=True)
        if end:
            self._finish()  # no await since the row ended: nobody can slip in between
        return Saved(stored, result)

    async def end(self) -> None:
        """End the row without saving anything (bounded; a row that cannot be ended now
        expires with its lease)."""
        if self.ended:
            return
        try:
            with shielded_save():
                await self._lifecycle.db.write(generations.end_generation, self.generation_id)
        except StorageError:
            log.warning("could not end generation %d; its lease will", self.generation_id)
        self._finish()

    def _finish(self) -> None:
        self.ended = True
        self._lifecycle.unregister(self.generation_id, self.conversation_id)


def pending_message(
    conversation_id: int,
    role: Any,
    content: str,
    *,
    character_id: int | None = None,
    status: Any = "complete",
    model: str | None = None,
    parent_id: int | None | Literal["active_leaf"] = "active_leaf",
) -> PendingMessage:
    """A message to save, stamped now (``model``: the model that answered an assistant one;
    ``parent_id``: where it goes in the tree, by default after the active leaf)."""
    return PendingMessage(
        conversation_id, role, content, character_id, status, utcnow(), model, parent_id
    )


# How long an ended generation's events stay here, for a client resuming with Last-Event-ID.
RECENT_SECONDS = 60.0


class GenerationLifecycle:
    """Claims, registers, runs and ends conversation generations (chat replies, group turns).

    With an `EventRelay` (Redis configured) every generation's events are also published for
    the other processes; ended generations' logs stay here `RECENT_SECONDS` for resuming."""

    def __init__(
        self,
        db: Database,
        runs: RunRegistry,
        tracker: GenerationTracker,
        spool: ReplySpool,
        relay: EventRelay | None = None,
    ) -> None:
        self.db = db
        self.runs = runs
        self.tracker = tracker
        self.spool = spool
        self.relay = relay
        self._by_conversation: dict[int, tuple[int, Run]] = {}
        # conversation → its ended generations' (id, run, ended at), newest last
        self._recent: dict[int, list[tuple[int, Run, float]]] = {}
        self._next_prune = 0.0

    async def claim(
        self, conversation_id: int, prepare: Callable[[Connection], T], *, busy: Conflict
    ) -> Claim[T]:
        """Claim the conversation's one generation and run `prepare` in the same transaction
        (store the user message, read the prompt's context). `busy` is raised while another
        generation runs; an error from `prepare` rolls the claim back."""

        claim = await self.claim_located(
            lambda _: (conversation_id, None), lambda conn, _: prepare(conn), busy=busy
        )
        return Claim(claim.generation_id, conversation_id, claim.prepared[1])

    async def claim_located(
        self,
        locate: Callable[[Connection], tuple[int, L]],
        prepare: Callable[[Connection, L], T],
        *,
        busy: Conflict,
    ) -> Claim[tuple[L, T]]:
        """`claim` when the conversation is found in the same transaction: `locate` returns
        its id and what it found (e.g. after checking the caller may use it; an error rolls
        everything back), `prepare` then runs with what was found. What `locate` wrote stays
        when the conversation is busy."""

        def begin(conn: Connection) -> tuple[int, tuple[int, tuple[L, T]] | None]:
            conversation_id, located = locate(conn)
            generation_id = self.tracker.begin(conn, conversation_id)
            if generation_id is None:
                return conversation_id, None
            return conversation_id, (generation_id, (located, prepare(conn, located)))

        conversation_id, begun = await self.db.write(begin)
        if begun is None:
            raise busy
        return Claim(begun[0], conversation_id, begun[1])

    async def start(
        self,
        kind: str,
        claim: Claim[Any],
        body: Callable[[Generation], Awaitable[R]],
        *,
        after: Callable[[], Awaitable[None]] | None = None,
        meta: Mapping[str, str | int | None] | None = None,
    ) -> Run:
        """Run `body` in the service nursery; `after` runs once the generation has ended.

        `meta` says where a partial reply goes should this process die mid-generation
        (``character_id``, ``parent_id``): another process stores it from the relayed events."""

        async def execute(run: Run) -> R:
            generation = Generation(self, claim, run)
            try:
                result = await body(generation)
            finally:
                if not generation.ended:
                    await generation.end()
            if after is not None:  # the generation has ended: a new one may already run
                try:
                    await after()
                except StorageError:
                    log.warning("follow-up work of generation %d failed", claim.generation_id)
            return result

        try:
            run = self.runs.start(
                (kind, claim.generation_id),
                execute,
                event_base=generation_event_base(claim.generation_id),
            )
        except RuntimeError:  # the service nursery is closed: shutting down
            await self._abandon(claim)
            raise ServiceUnavailable(
                "the server is shutting down", code="shutting_down", retry_after=1
            ) from None
        self.tracker.track(claim.generation_id, run)
        self._by_conversation[claim.conversation_id] = (claim.generation_id, run)
        if self.relay is not None:  # before the body's first event: it starts after an await
            info: dict[str, str | int | None] = {
                "conversation_id": claim.conversation_id,
                "kind": kind,
                "owner": self.tracker.owner,
            }
            self.relay.attach(claim.generation_id, run.events, info | dict(meta or {}))
        return run

    async def _abandon(self, claim: Claim[Any]) -> None:
        """End a claim that will never run, at once (not when its lease runs out)."""
        try:
            with shielded_save():
                await self.db.write(generations.end_generation, claim.generation_id)
        except StorageError:
            log.warning("could not end unstarted generation %d", claim.generation_id)

    def unregister(self, generation_id: int, conversation_id: int) -> None:
        self.tracker.forget(generation_id)
        current = self._by_conversation.get(conversation_id)
        if current is not None and current[0] == generation_id:
            del self._by_conversation[conversation_id]
            now = trio.current_time()
            recent = self._recent_of(conversation_id, now)
            recent.append((generation_id, current[1], now))
            self._recent[conversation_id] = recent[-3:]
            if now >= self._next_prune:  # at most once per RECENT_SECONDS, not per generation
                self._next_prune = now + RECENT_SECONDS
                self._prune(now)

    def _recent_of(self, conversation_id: int, now: float) -> list[tuple[int, Run, float]]:
        """The conversation's generations that ended here within `RECENT_SECONDS`."""
        entries = self._recent.get(conversation_id, [])
        return [entry for entry in entries if now - entry[2] < RECENT_SECONDS]

    def _prune(self, now: float) -> None:
        """Forget ended generations older than `RECENT_SECONDS`."""
        for conversation_id in list(self._recent):
            if kept := self._recent_of(conversation_id, now):
                self._recent[conversation_id] = kept
            else:
                del self._recent[conversation_id]

    def event_log(self, conversation_id: int, generation_id: int) -> EventLog | None:
        """The events of the conversation's generation `generation_id` if it runs here or ended
        here within `RECENT_SECONDS`."""
        current = self._by_conversation.get(conversation_id)
        if current is not None and current[0] == generation_id:
            return current[1].events
        for gid, run, _ in self._recent_of(conversation_id, trio.current_time()):
            if gid == generation_id:
                return run.events
        return None

    def running_generation(self, conversation_id: int) -> tuple[int, Run] | None:
        """``(generation id, run)`` of the conversation's generation if it runs here."""
        return self._by_conversation.get(conversation_id)

    async def stop(self, conversation_id: int) -> bool:
        """Stop the conversation's generation, wherever it runs: at once when it runs here,
        else through the row's stop flag (its process polls it). False when none runs."""
        current = self.running_generation(conversation_id)
        if current is not None and not current[1].finished.is_set():
            current[1].stop("stopped")
            return True
        return await self.db.write(generations.request_stop, conversation_id)


def check_idle(conn: Connection, conversation_id: int, busy: Conflict) -> None:
    """Inside a transaction: raise `busy` while a generation runs in the conversation (in any
    process), so a change to the conversation never races a running generation."""
    if generations.active_generation(conn, conversation_id, now=utcnow()) is not None:
        raise busy
