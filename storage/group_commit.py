"""Group commit for SQLite's single writer: writes queued together share one transaction.

SQLite takes one writer at a time, so writes queue behind each other anyway. Run one by one,
every write pays a pool checkout, ``BEGIN IMMEDIATE``, ``COMMIT`` and a trip to a worker thread
(and back through the GIL, contended by the event loop); under load that overhead, not the
statements, set the queue's pace. Here the writes waiting at the moment the writer frees up run
in one thread trip and one transaction, each inside its own SAVEPOINT: a write that raises is
rolled back to its savepoint and gets its own exception (the very object it raised, as
without grouping), the others commit. If the COMMIT itself fails, every write of the batch fails
with that error, each with its own copy (none of them took effect).

The effect is that of running the batch's writes one after another in separate transactions,
as the single writer did before: readers see all of a batch or none of it.

Which task runs a batch: the first writer that finds no batch running leads (one thread trip,
shielded so that a started batch always finishes); when the batch ends, its writers are woken
with their results and the oldest waiting writer, if any, leads the next one. A writer
cancelled before its write was taken leaves the queue and is never run (and passes the turn on,
should it have been handed the turn as it was cancelled); one cancelled after
gets its result, like ``trio.to_thread.run_sync`` (the cancellation shows at its next
checkpoint).
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import trio
from sqlalchemy import Connection, text

from .direct import Direct
from .errors import StorageUnavailable, translated_errors

T = TypeVar("T")

MAX_BATCH = 64


class _Write(Generic[T]):
    __slots__ = ("fn", "wake", "taken", "done", "value", "error")

    def __init__(self, fn: Callable[[Connection], T]) -> None:
        self.fn = fn
        self.wake = trio.Event()
        self.taken = False
        self.done = False
        self.value: T | None = None
        self.error: BaseException | None = None

    def result(self) -> T:
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


class GroupCommit:
    """Queue of write functions for one SQLite database, run in shared transactions.

    ``transact(fn)`` runs ``fn(conn)`` in one write transaction (``Database``'s own, so
    connection, ``BEGIN IMMEDIATE`` and error translation are the same as for any write).
    """

    def __init__(
        self,
        transact: Callable[[Callable[[Connection], None]], None],
        *,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._transact = transact
        self._max_batch = max_batch
        self._pending: deque[_Write[Any]] = deque()
        self._busy = False
        # Only the leader uses it, one call at a time: it never makes anyone wait.
        self._thread_limiter = trio.CapacityLimiter(1)
        self.batches = 0  # transactions committed or attempted, for statistics and tests
        self.writes = 0

    @property
    def busy(self) -> bool:
        """Whether a batch is running."""
        return self._busy

    @property
    def waiting(self) -> int:
        """Writes queued and not yet taken into a batch."""
        return len(self._pending)

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(conn)`` in the next batch and return its result (or raise its error)."""
        item = _Write(fn)
        self._pending.append(item)
        while not item.done:
            if not self._busy:
                await self._lead()
                continue
            try:
                await item.wake.wait()
            except trio.Cancelled:
                if not item.taken:
                    self._pending.remove(item)
                    self._pass_turn()  # it may have been handed the turn as it was cancelled
                    raise
                with trio.CancelScope(shield=True):
                    while not item.done:
                        await item.wake.wait()
                        item.wake = trio.Event()
                break
            item.wake = trio.Event()
        return item.result()

    async def _lead(self) -> None:
        self._busy = True
        batch: list[_Write[Any]] = []
        try:
            while self._pending and len(batch) < self._max_batch:
                write = self._pending.popleft()
                write.taken = True
                batch.append(write)
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._run_batch, batch, limiter=self._thread_limiter)
        except BaseException:
            # The worker thread itself died (``_run_batch`` handles every ``Exception``):
            # nothing was committed, and no writer may take that for a result.
            for write in batch:
                write.value = None
                write.error = StorageUnavailable("the write batch was aborted")
            raise
        finally:
            self._busy = False
            for write in batch:
                write.done = True
                write.wake.set()
            self._pass_turn()

    def _pass_turn(self) -> None:
        """With no batch running, wake the oldest waiting writer: it leads the next one."""
        if not self._busy and self._pending:
            self._pending[0].wake.set()

    def _run_batch(self, batch: list[_Write[Any]]) -> None:
        self.batches += 1
        self.writes += len(batch)
        try:
            self._transact(lambda conn: _apply(batch, conn))
        except Exception as exc:  # the transaction as a whole failed: nothing took effect
            for write in batch:
                write.value = None
                if write.error is None:  # a write that raised keeps its own error
                    write.error = _copy_error(exc)


def _apply(batch: list[_Write[Any]], conn: Connection) -> None:
    if len(batch) == 1:  # its own transaction is its savepoint
        write = batch[0]
        try:
            with translated_errors():
                write.value = write.fn(conn)
        except Exception as exc:
            write.error = exc  # the very object raised, for its caller
            raise  # and the transaction rolls back
        return
    for write in batch:
        # Plain SQL rather than ``conn.begin_nested()``: SQLAlchemy compiles its savepoint
        # statements anew each time (~0.17 ms a write, measured), these are sent as they are,
        # on the driver's cursor (``storage.direct``: two of them per write).
        _SAVEPOINT.rows(conn, {})
        try:
            with translated_errors():
                write.value = write.fn(conn)
        except Exception as exc:  # rolled back to its savepoint
            _ROLLBACK_TO.rows(conn, {})
            write.error = exc
        _RELEASE.rows(conn, {})


# one name: the savepoints of a batch follow each other, never nest
_SAVEPOINT = Direct(text("SAVEPOINT group_write"))
_ROLLBACK_TO = Direct(text("ROLLBACK TO SAVEPOINT group_write"))
_RELEASE = Direct(text("RELEASE SAVEPOINT group_write"))


def _copy_error(exc: Exception) -> Exception:
    """A separate exception object per writer (tracebacks are per raise), with all of ``exc``'s
    attributes; ``exc`` itself when it cannot be copied exactly."""
    try:
        duplicate = copy.copy(exc)  # the type's own pickling protocol: args and ``__dict__``
    except Exception:  # a constructor ``copy`` cannot call with the stored args
        return exc
    if type(duplicate) is not type(exc) or duplicate.args != exc.args:
        return exc
    duplicate.__cause__ = exc
    return duplicate
