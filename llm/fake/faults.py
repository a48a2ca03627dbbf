"""Injectable failures: `Fault` and the FIFO `FaultQueue` that chat requests consume."""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, get_args

from llm.fake.behaviour import InvalidFakeConfig

FaultKind = Literal[
    "http_status",
    "mid_stream_error",
    "error_only",
    "hang",
    "hang_after",
    "truncate",
    "invalid_json",
    "json_in_fence",
    "disconnect",
]
FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))


@dataclass
class Fault:
    """One injected failure, consumed by one chat request.

    kind:
      - ``http_status``: answer ``status`` with OpenRouter's error JSON
        ``{"error": {"code": status, "message", "metadata"?}}``, optional ``Retry-After``
        (``retry_after``: seconds as a number, or an HTTP-date string) and ``retry-after-ms``.
      - ``mid_stream_error``: HTTP 200, ``after_chunks`` content chunks, then a ``data:`` event with
        a top-level ``error`` (``code`` int or str) and ``finish_reason: "error"``; then the body
        ends (no ``[DONE]``). Non-streamed: a 200 JSON body carrying ``error`` and the partial text.
      - ``error_only``: like ``mid_stream_error`` with no chunk and no keep-alive before the error.
      - ``hang``: send the 200 headers (streams) and keep-alive comments if ``keepalives``, never a
        token; runs until the client goes away.
      - ``hang_after``: ``after_chunks`` content chunks, then silence.
      - ``truncate``: ``after_chunks`` content chunks, then close the connection mid-body (or, with
        ``graceful``, end the HTTP body cleanly) without a finish reason or ``[DONE]``.
      - ``invalid_json``: a structured-output request gets prose / broken JSON instead.
      - ``json_in_fence``: a structured-output request gets its JSON inside a json code fence with
        prose around it.
      - ``disconnect``: close the socket after reading the request, before any response byte.

    ``match``: when set, only a request whose last user message contains this substring consumes
    the fault (faults are otherwise consumed first-in first-out, one per chat request).
    """

    kind: FaultKind
    status: int = 500
    retry_after: float | str | None = None
    retry_after_ms: int | None = None
    after_chunks: int = 0
    code: int | str | None = None
    message: str | None = None
    metadata: dict[str, Any] | None = None
    keepalives: bool = True
    graceful: bool = False
    match: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise InvalidFakeConfig(f"unknown fault kind {self.kind!r}")
        if self.after_chunks < 0:
            raise InvalidFakeConfig("after_chunks must be >= 0")

    @classmethod
    def http(
        cls,
        status: int,
        *,
        retry_after: float | str | None = None,
        retry_after_ms: int | None = None,
        message: str | None = None,
        match: str | None = None,
    ) -> Fault:
        """An ``http_status`` fault (e.g. ``Fault.http(503)``)."""
        return cls(
            "http_status",
            status=status,
            retry_after=retry_after,
            retry_after_ms=retry_after_ms,
            message=message,
            match=match,
        )

    @classmethod
    def rate_limit(
        cls, *, retry_after: float | str | None = None, match: str | None = None
    ) -> Fault:
        """A 429 with an optional ``Retry-After``."""
        return cls.http(429, retry_after=retry_after, match=match)

    @classmethod
    def from_json(cls, data: Any) -> Fault:
        """Build a fault from a JSON object with the dataclass's field names."""
        if not isinstance(data, dict):
            raise InvalidFakeConfig("a fault must be a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise InvalidFakeConfig(f"unknown fault fields: {sorted(unknown)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise InvalidFakeConfig(str(exc)) from exc

    def to_json(self) -> dict[str, Any]:
        """The fault as a JSON-ready dict."""
        return dataclasses.asdict(self)

    def applies_to(self, last_user_message: str) -> bool:
        """Whether a request with this last user message consumes the fault."""
        return self.match is None or self.match in last_user_message

    def error_code(self) -> int | str:
        """The ``error.code`` to report: explicit, else the status or ``"server_error"``."""
        if self.code is not None:
            return self.code
        return self.status if self.kind == "http_status" else "server_error"

    def error_message(self) -> str:
        """The ``error.message`` to report."""
        if self.message is not None:
            return self.message
        if self.kind == "http_status":
            return _STATUS_MESSAGES.get(self.status, f"Fake upstream error {self.status}")
        return "Provider disconnected unexpectedly (fake upstream)"


_STATUS_MESSAGES = {
    400: "Bad request (fake upstream)",
    401: "No auth credentials found",
    402: "Insufficient credits (fake upstream)",
    403: "Forbidden (fake upstream)",
    408: "Request timed out (fake upstream)",
    429: "Rate limit exceeded (fake upstream)",
    500: "Internal server error (fake upstream)",
    502: "Provider returned an invalid response (fake upstream)",
    503: "No available provider (fake upstream)",
}


class FaultQueue:
    """First-in first-out faults; each chat request consumes at most one."""

    def __init__(self) -> None:
        self._faults: deque[Fault] = deque()

    def append(self, fault: Fault) -> None:
        """Queue a fault for a later request."""
        self._faults.append(fault)

    def extend(self, faults: list[Fault]) -> None:
        """Queue several faults in order."""
        self._faults.extend(faults)

    def take(self, last_user_message: str) -> Fault | None:
        """Remove and return the first fault that applies to this request, if any."""
        for index, fault in enumerate(self._faults):
            if fault.applies_to(last_user_message):
                del self._faults[index]
                return fault
        return None

    def clear(self) -> None:
        """Drop every pending fault."""
        self._faults.clear()

    def __len__(self) -> int:
        return len(self._faults)

    def __iter__(self) -> Iterator[Fault]:
        return iter(list(self._faults))
