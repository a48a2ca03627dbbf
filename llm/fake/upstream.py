"""`FakeUpstream`: the fake's live state — behaviour, fault queue, recorded requests, counters."""

from __future__ import annotations

import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from llm.fake.behaviour import FakeBehaviour
from llm.fake.faults import Fault, FaultQueue


@dataclass
class RecordedRequest:
    """One chat-completions request as the fake saw and answered it."""

    method: str
    path: str
    headers: dict[str, str]
    started_at: float
    """``trio.current_time()`` when the request was read."""
    body: Any = None
    """The parsed JSON body (None if it was not JSON)."""
    stream: bool = False
    ended_at: float | None = None
    status: int | None = None
    """The HTTP status sent (None if no response started)."""
    disconnected: bool = False
    """The client went away before the response was complete."""
    fault: Fault | None = None
    reply: str = ""
    """The full reply text the fake planned (what a complete response carries)."""
    chunks_sent: int = 0
    generation_id: str | None = None

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The request's ``messages`` (empty if absent)."""
        if isinstance(self.body, dict) and isinstance(self.body.get("messages"), list):
            return [m for m in self.body["messages"] if isinstance(m, dict)]
        return []

    @property
    def finished(self) -> bool:
        """Whether the fake is done with this request."""
        return self.ended_at is not None


@dataclass
class FakeUpstream:
    """The running fake: mutate ``behaviour``, queue ``faults``, inspect ``requests``."""

    behaviour: FakeBehaviour
    host: str
    port: int
    faults: FaultQueue = field(default_factory=FaultQueue)
    requests: list[RecordedRequest] = field(default_factory=list)
    active: int = 0
    max_active: int = 0
    requests_total: int = 0
    connections_total: int = 0
    connections_open: int = 0
    completed: int = 0
    disconnects: int = 0
    chunks_sent: int = 0
    max_pacing_lag: float = 0.0
    """The latest a paced write went out after its due time, in seconds (the fake keeping up)."""
    statuses: Counter[int] = field(default_factory=Counter)
    internal_errors: list[str] = field(default_factory=list)
    directive_uses: dict[tuple[str, int], int] = field(default_factory=dict)
    _changed: trio.Event = field(default_factory=trio.Event, repr=False)
    _sequence: int = 0
    _waiters: int = 0

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, e.g. ``http://127.0.0.1:PORT/v1``."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/v1"

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds; re-checked whenever a request changes state.

        State changes: a request starts, sends its headers, sends a chunk, ends, disconnects;
        a connection closes.
        Bound the wait with ``trio.fail_after`` in tests.
        """
        while True:
            changed = self._changed
            if predicate():
                return
            self._waiters += 1
            try:
                await changed.wait()
            finally:
                self._waiters -= 1

    def notify(self) -> None:
        """Wake `wait_for` callers (cheap when nobody waits)."""
        if self._waiters:
            self._changed.set()
            self._changed = trio.Event()

    def next_sequence(self) -> int:
        """A per-process request number (drives the alternating usage-chunk style)."""
        self._sequence += 1
        return self._sequence

    def begin(self, method: str, path: str, headers: dict[str, str]) -> RecordedRequest:
        """Record a chat request as started."""
        record = RecordedRequest(method, path, headers, started_at=trio.current_time())
        self.requests.append(record)
        overflow = len(self.requests) - self.behaviour.max_recorded
        if overflow > 0:
            del self.requests[:overflow]
        self.requests_total += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        self.notify()
        return record

    def end(self, record: RecordedRequest, *, status: int | None, disconnected: bool) -> None:
        """Record a chat request as finished (called from ``finally``; never awaits)."""
        record.ended_at = trio.current_time()
        record.status = status
        record.disconnected = disconnected
        self.active -= 1
        if disconnected:
            self.disconnects += 1
        else:
            self.completed += 1
        if status is not None:
            self.statuses[status] += 1
        self.notify()

    def note_pacing_lag(self, lag: float) -> None:
        """Track how far behind schedule a paced write was."""
        if lag > self.max_pacing_lag:
            self.max_pacing_lag = lag

    def amend_disconnected(self, record: RecordedRequest) -> None:
        """The client vanished during the write that completed ``record``."""
        record.disconnected = True
        self.completed -= 1
        self.disconnects += 1
        self.notify()

    def record_internal_error(self, exc: Exception) -> None:
        """Keep the traceback of a bug in the fake (the request got a 500 or a cut connection)."""
        self.internal_errors.append("".join(traceback.format_exception(exc)))
        self.notify()

    def stats(self) -> dict[str, Any]:
        """Counters for ``GET /_fake/stats``."""
        return {
            "requests_total": self.requests_total,
            "connections_total": self.connections_total,
            "connections_open": self.connections_open,
            "active": self.active,
            "max_active": self.max_active,
            "completed": self.completed,
            "disconnects": self.disconnects,
            "chunks_sent": self.chunks_sent,
            "max_pacing_lag": round(self.max_pacing_lag, 6),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "faults_pending": len(self.faults),
            "internal_errors": len(self.internal_errors),
        }

    def reset(self) -> None:
        """Forget recorded requests, counters, pending faults and directive counts.

        The behaviour is kept; requests in flight still count in ``active``.
        """
        self.requests.clear()
        self.faults.clear()
        self.directive_uses.clear()
        self.internal_errors.clear()
        self.statuses.clear()
        self.requests_total = self.completed = self.disconnects = self.chunks_sent = 0
        self.max_pacing_lag = 0.0
        self.connections_total = self.connections_open
        self.max_active = self.active
        self.notify()
