"""Memory compression: durable jobs, run by a supervised pool of workers.

A conversation whose uncompressed messages exceed the trigger gets a `compress` job in the
database (`jobs.enqueue`, deduplicated per conversation). The in-memory wake-up only shortens
the wait; workers also poll, so queued jobs, retries, jobs of other processes and jobs whose
owner died (expired lease) all run. A job:

1. fixes `upto_message_id` = the newest message it will consume (all uncompressed messages but
   the newest `keep_recent`), so messages arriving meanwhile are never marked;
2. summarises them with one structured LLM call per character (direct: the character; group:
   every member, concurrently, each from its own point of view);
3. stores the summaries and marks the messages in one transaction that also checks the job's
   lease is still ours (`memories.apply_compression`);
4. merges a character's short-term memories into long-term ones when they exceed the budget
   (`memories.replace_with_long_term`); memories a user wrote, edited or pinned are left out of
   the merge and never rewritten.

A failed attempt is retried with exponential backoff (`jobs.fail(retry_at=...)`) and marked
failed, with its error kept, after `max_attempts`. A job interrupted by shutdown goes back to the
queue at once. The lease is extended while the job works.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import trio
from pydantic import BaseModel, Field
from sqlalchemy import Connection

import llm
from app.services.changes import ChangeSignal
from app.services.greetings import character_language
from app.services.prompt_texts import PromptTexts, texts_for
from app.services.supervisor import Supervisor, SupervisorPolicy
from storage import (
    Database,
    StorageError,
    characters,
    conversations,
    groups,
    jobs,
    memories,
    messages,
)
from storage.records import Conversation, Job, Language, Message

log = logging.getLogger(__name__)

JOB_KIND = "compress"
MESSAGE_CHARS = 2000
"""Longest message text put into a summary prompt."""
MAX_NOTES = 10
"""Most short-term memories kept from one summary."""
LONG_TERM_LIMIT = 20
"""Most long-term memories kept from one merge."""


class MemoryNote(BaseModel):
    """One memory: a short sentence and how much it matters (1 trivia … 5 essential)."""

    content: str = Field(min_length=1)
    importance: int = Field(ge=1, le=5)


class MemoryNotes(BaseModel):
    """A structured answer: the memory notes."""

    memories: list[MemoryNote]


@dataclass
class MemoryHooks:
    """Fault injection for tests (all None in production).

    `worker_loop(index)` runs at the top of each worker iteration; raising there crashes the
    worker (the supervisor restarts it). `before_apply(conversation_id)` runs after the summaries
    are written and before they are stored, so a test can hold a job mid-flight.
    """

    worker_loop: Callable[[int], None] | None = None
    before_apply: Callable[[int], Awaitable[None]] | None = None


class LeaseLost(Exception):
    """Another worker took the job over (our lease expired)."""


@dataclass
class _Context:
    """What one compression needs, read in one transaction."""

    conversation: Conversation
    owners: dict[int | None, str]
    """Whose memories: character id (None for a direct conversation) → that character's name."""
    names: dict[int, str]
    """Every character id in the pending messages → name."""
    group_name: str | None
    pending: list[Message]
    languages: dict[int | None, Language] = field(default_factory=dict)
    """Whose memories → the language of that character's prompts."""


@dataclass
class JobCounters:
    """Jobs this process finished, failed for good, or scheduled for a retry."""

    done: int = 0
    failed: int = 0
    retried: int = 0


@dataclass
class MemoryService:
    """Schedules and runs the compression of conversations' old messages into memories."""

    db: Database
    client: llm.OpenRouterClient | None
    trigger: int
    keep_recent: int
    short_term_budget: int = 20
    workers: int = 2
    lease_seconds: float = 30.0
    poll_interval: float = 2.0
    max_attempts: int = 5
    retry_base: float = 1.0
    retry_cap: float = 300.0
    policy: SupervisorPolicy = field(default_factory=SupervisorPolicy)
    hooks: MemoryHooks = field(default_factory=MemoryHooks)
    owner: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    )
    counters: JobCounters = field(default_factory=JobCounters)

    def __post_init__(self) -> None:
        self.supervisor = Supervisor("memory", self.policy)
        self._wakeup = trio.Event()
        self._changes = ChangeSignal()
        self._next_retry: float | None = None
        self._rng = random.Random()
        self.running = 0

    # ---- scheduling (called by the chat and group services, and by /chat/compress)

    async def maybe_schedule(
        self, conversation_id: int, *, uncompressed: int | None = None
    ) -> bool:
        """Enqueue compression when the uncompressed messages exceed the trigger.

        `uncompressed` is the count when the caller read it in its own transaction.
        Best effort: a database error is logged, not raised (the next message checks again).
        """
        try:
            count = uncompressed
            if count is None:
                count = await self.db.read(messages.count_uncompressed, conversation_id)
            if count <= self.trigger:
                return False
            return await self._enqueue(conversation_id)
        except StorageError:
            log.warning("could not schedule compression of %d", conversation_id, exc_info=True)
            return False

    async def schedule(self, conversation_id: int, *, force: bool = False) -> bool:
        """Enqueue compression now (`force`: whenever anything lies beyond `keep_recent`).

        False when a job for this conversation is already queued or running, or nothing to do.
        """
        count = await self.db.read(messages.count_uncompressed, conversation_id)
        if count <= (self.keep_recent if force else self.trigger):
            return False
        return await self._enqueue(conversation_id)

    async def _enqueue(self, conversation_id: int) -> bool:
        queued = await self.db.write(
            jobs.enqueue,
            JOB_KIND,
            {"conversation_id": conversation_id},
            dedupe_key=f"{JOB_KIND}:{conversation_id}",
        )
        if queued:
            self.wake()
        return queued

    def wake(self) -> None:
        """Wake idle workers (they claim from the database; this is only a signal)."""
        wakeup, self._wakeup = self._wakeup, trio.Event()
        wakeup.set()

    def database_answered(self) -> int:
        """The database answers again: restart at once the workers backing off after a storage
        error (instead of after their backoff); returns how many."""
        return self.supervisor.retry_now(lambda error: issubclass(error, StorageError))

    # ---- observation

    def health(self) -> dict[str, dict[str, Any]]:
        """Supervisor reports by name: {"status": "ok" | "degraded", ...}."""
        return {"memory_workers": self.supervisor.health()}

    async def stats(self) -> dict[str, int]:
        """Jobs by status (every process's, from the database) and this process's restarts."""
        counts = await self.db.read(jobs.counts)
        return {
            "queued": counts["queued"],
            "running": counts["running"],
            "done": counts["done"],
            "failed": counts["failed"],
            "restarts": self.supervisor.restarts,
        }

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until `predicate()` holds; re-checked whenever a job of this process changes."""
        await self._changes.wait_for(predicate)

    async def wait_idle(self) -> None:
        """Return once the database holds no queued or running job.

        Re-checked whenever a job is enqueued or finishes here; bound it with `trio.fail_after`.
        """
        while True:
            changed = self._changes.current()
            counts = await self.db.read(jobs.counts)
            if counts["queued"] == 0 and counts["running"] == 0:
                return
            await changed.wait()

    def _notify(self) -> None:
        self._changes.notify()

    # ---- workers

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run `workers` supervised workers until cancelled."""
        pool = {f"memory-{i}": partial(self._worker, i) for i in range(self.workers)}
        await self.supervisor.run(pool, task_status=task_status)

    async def _worker(self, index: int) -> None:
        while True:
            if self.hooks.worker_loop is not None:
                self.hooks.worker_loop(index)
            wakeup = self._wakeup
            job = await self.db.write(
                jobs.claim,
                owner=self.owner,
                lease_seconds=self.lease_seconds,
                now=_now(),
                kinds=[JOB_KIND],
            )
            self.supervisor.mark_working(f"memory-{index}")  # the database answers it
            if job is None:
                with trio.move_on_after(self._idle_wait()):
                    await wakeup.wait()
                continue
            await self._process(job)

    def _idle_wait(self) -> float:
        wait = self.poll_interval
        if self._next_retry is not None:
            until = self._next_retry - trio.current_time()
            if until <= 0:
                self._next_retry = None
            wait = max(0.0, min(wait, until))
        return wait

    async def _process(self, job: Job) -> None:
        self.running += 1
        self._notify()
        attempted = False
        try:
            error = await self._attempt(job)
            attempted = True
        finally:
            self.running -= 1
            if not attempted:
                await self._release(job)
            self._notify()
        if error is None:
            await self.db.write(jobs.complete, job.id, owner=self.owner)
            self.counters.done += 1
            # messages that arrived while it ran may be past the trigger again; their own
            # check found this job still unfinished and enqueued nothing
            await self.maybe_schedule(int(job.payload["conversation_id"]))
        else:
            await self._failed(job, error)
        self._notify()

    async def _attempt(self, job: Job) -> Exception | None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._keep_lease, job.id)
                await self.compress(int(job.payload["conversation_id"]), job_id=job.id)
                nursery.cancel_scope.cancel()
        except Exception as exc:  # the job's failure, recorded on the job; never Cancelled
            return _unwrap(exc)
        return None

    async def _keep_lease(self, job_id: int) -> None:
        while True:
            await trio.sleep(self.lease_seconds / 3)
            kept = await self.db.write(
                jobs.extend_lease,
                job_id,
                owner=self.owner,
                lease_seconds=self.lease_seconds,
                now=_now(),
            )
            if not kept:
                raise LeaseLost(f"job {job_id} was taken over")

    async def _failed(self, job: Job, error: Exception) -> None:
        message = f"{type(error).__name__}: {error}"[:2000]
        retry_at = None
        if job.attempts < self.max_attempts:
            delay = min(self.retry_cap, self.retry_base * 2 ** (job.attempts - 1))
            delay *= 1 + 0.25 * self._rng.random()
            retry_at = _now() + timedelta(seconds=delay)
            due = trio.current_time() + delay
            self._next_retry = due if self._next_retry is None else min(self._next_retry, due)
            log.warning("compression job %d failed (attempt %d): %s", job.id, job.attempts, message)
        else:
            log.error("compression job %d failed for good: %s", job.id, message)
        await self.db.write(jobs.fail, job.id, owner=self.owner, error=message, retry_at=retry_at)
        if retry_at is None:
            self.counters.failed += 1
        else:
            self.counters.retried += 1

    async def _release(self, job: Job) -> None:
        """Put a job interrupted by cancellation back in the queue, due now."""
        with trio.move_on_after(5, shield=True):
            try:
                await self.db.write(
                    jobs.fail,
                    job.id,
                    owner=self.owner,
                    error="interrupted (shutting down)",
                    retry_at=_now(),
                )
            except StorageError:
                log.warning("could not release compression job %d", job.id, exc_info=True)

    # ---- the compression itself

    async def compress(self, conversation_id: int, *, job_id: int | None = None) -> int:
        """Compress the conversation now; returns how many messages were marked.

        With `job_id`, the summaries are stored only while that job's lease is still ours.
        """
        context = await self.db.read(self._load_context, conversation_id)
        if context is None:
            return 0
        marked = 0
        if context.pending:
            summaries: dict[int | None, list[tuple[str, int]]] = {}

            async def summarise(key: int | None) -> None:
                summaries[key] = await self._summarise(context, key)

            async with trio.open_nursery() as nursery:
                for key in context.owners:
                    nursery.start_soon(summarise, key)
            if self.hooks.before_apply is not None:
                await self.hooks.before_apply(conversation_id)
            marked = await self.db.write(
                self._apply,
                conversation_id,
                [m.id for m in context.pending],
                summaries,
                job_id,
            )
        async with trio.open_nursery() as nursery:
            for key in context.owners:
                nursery.start_soon(self._maybe_merge, context, key)
        return marked

    def _load_context(self, conn: Connection, conversation_id: int) -> _Context | None:
        conversation = conversations.get_conversation(conn, conversation_id)
        if conversation is None:
            return None
        pending = messages.oldest_uncompressed(conn, conversation_id, keep_recent=self.keep_recent)
        owners: dict[int | None, str] = {}
        languages: dict[int | None, Language] = {}
        group_name = None
        user_id = conversation.user_id
        if conversation.character_id is not None:
            character = characters.get_character(conn, user_id, conversation.character_id)
            if character is None:
                return None
            owners[None] = character.name
            languages[None] = character_language(character)
        elif conversation.group_id is not None:
            group = groups.get_group(conn, user_id, conversation.group_id)
            if group is None:
                return None
            group_name = group.name
            for member in characters.get_characters(conn, user_id, group.character_ids):
                owners[member.id] = member.name
                languages[member.id] = character_language(member)
        speaker_ids = {m.character_id for m in pending if m.character_id is not None}
        speakers = characters.get_characters(conn, user_id, sorted(speaker_ids))
        names = {c.id: c.name for c in speakers}
        if conversation.character_id is not None:
            names.setdefault(conversation.character_id, owners[None])
        return _Context(conversation, owners, names, group_name, pending, languages)

    def _apply(
        self,
        conn: Connection,
        conversation_id: int,
        message_ids: list[int],
        summaries: dict[int | None, list[tuple[str, int]]],
        job_id: int | None,
    ) -> int:
        if job_id is not None and not jobs.extend_lease(
            conn, job_id, owner=self.owner, lease_seconds=self.lease_seconds, now=_now()
        ):
            raise LeaseLost(f"job {job_id} was taken over before its summaries were stored")
        marked = memories.apply_compression(
            conn,
            conversation_id,
            upto_message_id=message_ids[-1],
            summaries=summaries,
            message_ids=message_ids,
        )
        # the active path may have changed while the summaries were written
        memories.invalidate_stale(conn, conversation_id)
        return marked

    async def _summarise(self, context: _Context, key: int | None) -> list[tuple[str, int]]:
        name = context.owners[key]
        texts = texts_for(context.languages.get(key, "en"))
        if context.group_name is None:
            setting = texts.memory_direct_setting.format(name=name)
        else:
            others = texts.list_separator.join(n for k, n in context.owners.items() if k != key)
            setting = texts.memory_group_setting.format(
                group=context.group_name, name=name, others=others
            )
        transcript = "\n".join(_line(m, context.names, texts) for m in context.pending)
        prompt: list[llm.ChatMessage] = [
            {
                "role": "system",
                "content": texts.memory_summary_system.format(
                    name=name, setting=setting, limit=MAX_NOTES
                ),
            },
            {
                "role": "user",
                "content": texts.memory_summary_header.format(name=name) + "\n\n" + transcript,
            },
        ]
        notes = await self._structured(prompt, context.conversation.user_id)
        return _top(notes, MAX_NOTES)

    async def _maybe_merge(self, context: _Context, key: int | None) -> None:
        conversation_id = context.conversation.id
        listed_now = await self.db.read(memories.list_memories, conversation_id, character_id=key)
        # a memory a user wrote, edited or pinned is never rewritten or merged
        current = [m for m in listed_now if not m.protected]
        short = [m for m in current if m.kind == "short_term"]
        if len(short) <= self.short_term_budget:
            return
        name = context.owners[key]
        texts = texts_for(context.languages.get(key, "en"))
        listed = "\n".join(f"- ({m.importance}) {m.content}" for m in current)
        prompt: list[llm.ChatMessage] = [
            {
                "role": "system",
                "content": texts.memory_merge_system.format(name=name, limit=LONG_TERM_LIMIT),
            },
            {
                "role": "user",
                "content": texts.memory_merge_header.format(name=name) + "\n\n" + listed,
            },
        ]
        merged = _top(
            await self._structured(prompt, context.conversation.user_id), LONG_TERM_LIMIT
        )
        merged_now = await self.db.write(
            memories.replace_with_long_term,
            conversation_id,
            character_id=key,
            remove_ids=[m.id for m in current],
            long_term=merged,
        )
        if not merged_now:  # a user changed one of them meanwhile: the next compression merges
            log.info("memory merge of %d skipped: a user changed a memory", conversation_id)

    async def _structured(self, prompt: Sequence[llm.ChatMessage], user_id: int) -> MemoryNotes:
        """One compression call, on the conversation owner's account: it counts in their usage
        (and quota) and takes one of their LLM slots, like their own calls."""
        if self.client is None:
            raise RuntimeError("no LLM client configured for memory compression")
        return await self.client.structured(prompt, MemoryNotes, user=str(user_id))


def _line(message: Message, names: dict[int, str], texts: PromptTexts) -> str:
    if message.role == "user":
        speaker = texts.user_label
    elif message.character_id is not None:
        speaker = names.get(message.character_id, texts.someone)
    else:
        speaker = texts.assistant_label
    text = message.content
    if len(text) > MESSAGE_CHARS:
        text = text[:MESSAGE_CHARS] + " …"
    return f"{speaker}: {text}"


def _top(notes: MemoryNotes, limit: int) -> list[tuple[str, int]]:
    """The most important notes first-come within equal importance, at most `limit`."""
    cleaned = [(n.content.strip(), n.importance) for n in notes.memories if n.content.strip()]
    ranked = sorted(range(len(cleaned)), key=lambda i: -cleaned[i][1])[:limit]
    return [cleaned[i] for i in sorted(ranked)]


def _unwrap(exc: Exception) -> Exception:
    while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _now() -> datetime:
    return datetime.now(UTC)
