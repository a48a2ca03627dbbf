"""Minimal SSE consumption for the load driver: timing and counts, not full event objects.

The driver reads up to 1,000 streams in one process, so it does as little per event as it
can: split the raw body on blank lines, look at the event name, and parse JSON only for
``delta`` events (to count characters exactly) and the terminal ``error``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx
import trio


@dataclass
class StreamResult:
    """What one request observed; times are ``trio.current_time()`` values."""

    started: float
    status: int = 0
    first_delta: float | None = None
    last_delta: float | None = None
    max_gap: float = 0.0
    deltas: int = 0
    chars: int = 0
    ended: float | None = None
    terminal: str | None = None  # "done" | "error" | None (stream cut short)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.terminal == "done"

    @property
    def latency(self) -> float | None:
        return None if self.ended is None else self.ended - self.started

    @property
    def time_to_first_delta(self) -> float | None:
        return None if self.first_delta is None else self.first_delta - self.started

    def fail(self, reason: str) -> None:
        """Record a failure (the first one wins) and the time it was seen."""
        if self.error is None:
            self.error = reason
        if self.ended is None:
            self.ended = trio.current_time()


def _field(block: bytes, name: bytes) -> bytes | None:
    start = block.find(name)
    if start < 0:
        return None
    start += len(name)
    end = block.find(b"\n", start)
    return block[start : end if end >= 0 else len(block)].strip()


async def consume_sse(response: httpx.Response, result: StreamResult) -> None:
    """Read an SSE body to its end, filling ``result`` as events arrive."""
    result.status = response.status_code
    if response.status_code != 200:
        body = await response.aread()
        result.fail(f"http {response.status_code}: {body[:200]!r}")
        return
    buffer = b""
    async for chunk in response.aiter_raw():
        now = trio.current_time()
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buffer += chunk
        *blocks, buffer = buffer.split(b"\n\n")
        for block in blocks:
            event = _field(block, b"event:")
            if event == b"delta":
                if result.last_delta is None:
                    result.first_delta = now
                else:
                    result.max_gap = max(result.max_gap, now - result.last_delta)
                result.last_delta = now
                result.deltas += 1
                data = _field(block, b"data:")
                if data:
                    result.chars += len(json.loads(data).get("text", ""))
            elif event == b"done":
                result.terminal = "done"
            elif event == b"error":
                result.terminal = "error"
                result.fail(f"error event: {(_field(block, b'data:') or b'')[:200]!r}")
    result.ended = trio.current_time()
    if result.terminal is None:
        result.fail("stream ended without a terminal event")
