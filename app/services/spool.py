"""Replies that could not be saved because the database was down, kept until it answers again.

A finished (or partial) reply that a user watched stream must not vanish when the database is
briefly unavailable. `ReplySpool.keep` records the messages (and the generation row to end with
them) in memory and, when a directory is configured, appends them to this process's spool file
(`<dir>/<owner>.jsonl`, fsynced, held under an exclusive `flock` while the process lives). One
task saves what is pending with capped exponential backoff until the database takes it.

At start, spool files whose lock can be taken belong to processes that are gone: their pending
entries are adopted and saved, then the file is removed. Saving is idempotent: a message already
stored (same conversation, role, character, creation time and content) is not stored twice, so
a save that committed just before its connection broke is not duplicated.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Literal

import trio
from sqlalchemy import Connection

from storage import Database, StorageError, StorageUnavailable, generations, messages
from storage.records import Message, MessageRole, MessageStatus

log = logging.getLogger(__name__)

FIRST_RETRY = 0.5
MAX_RETRY = 10.0


@dataclass(frozen=True)
class PendingMessage:
    """A message to store, with the creation time that identifies it on a replay."""

    conversation_id: int
    role: MessageRole
    content: str
    character_id: int | None
    status: MessageStatus
    created_at: datetime
    model: str | None = None  # assistant messages: the model that answered
    # where it goes in the tree: after the conversation's active leaf, or under this message
    # (None: a new root) as an alternative of its other children
    parent_id: int | None | Literal["active_leaf"] = "active_leaf"

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"created_at": self.created_at.isoformat()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PendingMessage:
        return cls(**(data | {"created_at": datetime.fromisoformat(data["created_at"])}))


@dataclass
class SpoolEntry:
    """Messages to store together, and the generation row ended in the same transaction."""

    messages: list[PendingMessage]
    generation_id: int | None = None
    key: str = field(default_factory=lambda: secrets.token_hex(8))

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "generation_id": self.generation_id,
            "messages": [m.to_json() for m in self.messages],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SpoolEntry:
        return cls(
            [PendingMessage.from_json(m) for m in data["messages"]],
            data.get("generation_id"),
            data["key"],
        )


def store_entry(conn: Connection, entry: SpoolEntry, *, replay: bool = True) -> list[Message]:
    """Inside a write transaction: store the entry's messages (skipping any already stored)
    and end its generation row. ``replay=False`` for the first attempt, which cannot find
    its messages stored yet (they are stamped just before it): no lookup."""
    stored = []
    for m in entry.messages:
        existing = replay and messages.find_message(
            conn,
            m.conversation_id,
            role=m.role,
            character_id=m.character_id,
            created_at=m.created_at,
            content=m.content,
        )
        stored.append(
            existing
            or messages.add_message(
                conn,
                m.conversation_id,
                m.role,
                m.content,
                character_id=m.character_id,
                status=m.status,
                created_at=m.created_at,
                model=m.model,
                parent_id=m.parent_id,
            )
        )
    if entry.generation_id is not None:
        generations.end_generation(conn, entry.generation_id)
    return stored


class _SpoolFile:
    """One append-only JSON-lines file: `{"entry": ...}` lines and `{"done": key}` lines."""

    def __init__(self, path: Path, handle: IO[str]) -> None:
        self.path = path
        self.handle = handle

    @classmethod
    def lock(cls, path: Path) -> _SpoolFile | None:
        """Open and exclusively lock `path`; None if another living process holds it."""
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - kept open while locked
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        return cls(path, handle)

    def pending(self) -> list[SpoolEntry]:
        self.handle.seek(0)
        entries: dict[str, SpoolEntry] = {}
        for line in self.handle:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a crash mid-write: its entry was never acknowledged
            if "entry" in record:
                entry = SpoolEntry.from_json(record["entry"])
                entries[entry.key] = entry
            elif "done" in record:
                entries.pop(record["done"], None)
        return list(entries.values())

    def append(self, record: dict[str, Any]) -> None:
        self.handle.seek(0, os.SEEK_END)
        self.handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self.handle.close()

    def close(self) -> None:
        self.handle.close()


class ReplySpool:
    """Pending saves of this process, retried until the database takes them."""

    def __init__(self, db: Database, directory: Path | None, *, owner: str) -> None:
        self._db = db
        self._directory = directory
        self._name = "".join(c if c.isalnum() or c in "-_." else "_" for c in owner) + ".jsonl"
        self._own: _SpoolFile | None = None
        self._adopted: dict[str, _SpoolFile] = {}  # entry key -> the dead process's file
        self._pending: list[SpoolEntry] = []
        self._wake = trio.Event()
        self._empty = trio.Event()
        self._empty.set()
        self._file_lock = threading.Lock()  # file work runs in worker threads

    @property
    def pending(self) -> int:
        """How many entries wait for the database."""
        return len(self._pending)

    async def keep(self, entry: SpoolEntry) -> None:
        """Record `entry` durably (when a directory is configured) and schedule its save."""
        self._pending.append(entry)  # first: a concurrent save never truncates its line
        if self._empty.is_set():
            self._empty = trio.Event()
        if self._directory is not None:
            await trio.to_thread.run_sync(self._append_own, {"entry": entry.to_json()})
        self._wake.set()

    def _append_own(self, record: dict[str, Any]) -> None:
        with self._file_lock:
            self._append_own_locked(record)

    def _append_own_locked(self, record: dict[str, Any]) -> None:
        if self._own is None:
            assert self._directory is not None
            self._directory.mkdir(parents=True, exist_ok=True)
            own = _SpoolFile.lock(self._directory / self._name)
            if own is None:
                raise RuntimeError(f"spool file {self._name} is locked by another process")
            self._own = own
        self._own.append(record)

    def _adopt(self) -> list[SpoolEntry]:
        """Entries left by processes that are gone (their files' locks are free)."""
        if self._directory is None or not self._directory.is_dir():
            return []
        adopted = []
        for path in sorted(self._directory.glob("*.jsonl")):
            if path.name == self._name:
                continue
            spool_file = _SpoolFile.lock(path)
            if spool_file is None:
                continue  # its process is alive and saves its own entries
            entries = spool_file.pending()
            if not entries:
                spool_file.remove()
                continue
            for entry in entries:
                self._adopted[entry.key] = spool_file
            adopted.extend(entries)
        return adopted

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Adopt entries of dead processes, then save pending entries until cancelled."""
        adopted = await trio.to_thread.run_sync(self._adopt)
        if adopted:
            log.warning("saving %d replies left by a stopped process", len(adopted))
            self._pending.extend(adopted)
            self._empty = trio.Event()
        task_status.started()
        delay = FIRST_RETRY
        try:
            while True:
                if not self._pending:
                    self._wake = trio.Event()
                    await self._wake.wait()
                    delay = FIRST_RETRY
                if await self._save_pending():
                    delay = FIRST_RETRY
                    continue
                await trio.sleep(delay)
                delay = min(MAX_RETRY, delay * 2)
        finally:
            for spool_file in {id(f): f for f in self._adopted.values()}.values():
                spool_file.close()
            if self._own is not None:
                self._own.close()

    async def _save_pending(self) -> bool:
        """Try each pending entry once; True when all were saved."""
        for entry in list(self._pending):
            try:
                await self._db.write(store_entry, entry)
            except StorageUnavailable:
                return False
            except StorageError:
                # It can never be stored (e.g. its conversation was deleted): drop it, loudly.
                log.exception("dropping a spooled reply that cannot be stored")
            self._pending.remove(entry)
            await trio.to_thread.run_sync(self._mark_done, entry.key)
        if not self._pending:
            self._empty.set()
        return True

    def _mark_done(self, key: str) -> None:
        with self._file_lock:
            self._mark_done_locked(key)

    def _mark_done_locked(self, key: str) -> None:
        adopted = self._adopted.pop(key, None)
        if adopted is not None:
            if not any(f is adopted for f in self._adopted.values()):
                adopted.remove()
            return
        if self._own is not None:
            self._own.append({"done": key})
            if not self._pending:
                self._own.handle.truncate(0)

    async def wait_empty(self) -> None:
        """Return once nothing is pending."""
        await self._empty.wait()
