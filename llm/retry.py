"""Which failures are retried, and how long to wait before the next attempt.

Retried: HTTP 408, 429, 500, 502, 503 (also as in-stream error codes),
connection errors and first-token timeouts; 402 only when the upstream sent a
Retry-After. Never 400, 401, 403 or anything else. A server-given wait
(``retry-after-ms`` or ``Retry-After`` in seconds or as an HTTP date) is
honoured exactly when it is within ``retry_after_cap``; a longer one is not
waited for (the error is raised with its ``retry_after``). Otherwise the wait
is exponential backoff with jitter. The client only ever retries before the
first delta was handed to its caller.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import trio

from llm.errors import (
    FirstTokenTimeout,
    LLMError,
    PaymentRequired,
    UpstreamUnavailable,
)

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503})


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait, from ``retry-after-ms`` or ``Retry-After``.

    ``Retry-After`` may be delta-seconds or an HTTP date (compared with ``now``,
    wall-clock seconds since the epoch, default ``time.time()``). Unparseable → None.
    """
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            ms = float(value)
        except ValueError:
            ms = -1.0
        if ms >= 0 and ms == ms:  # not NaN
            return ms / 1000
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        current = time.time() if now is None else now
        return max(0.0, when.timestamp() - current)
    if seconds != seconds or seconds < 0:  # NaN or negative
        return None
    return seconds


def is_retryable(exc: LLMError) -> bool:
    """Whether a failed attempt may be retried (before the first delta)."""
    if isinstance(exc, FirstTokenTimeout):
        return True
    if exc.status is None:
        # No status: only a connection-level failure is transient.
        return isinstance(exc, UpstreamUnavailable)
    if isinstance(exc, PaymentRequired) or exc.status == 402:
        return exc.retry_after is not None
    return exc.status in RETRYABLE_STATUS


@dataclass
class RetryPolicy:
    """Retry budget and waits. ``sleep`` and ``rng`` are injectable for tests."""

    max_retries: int = 2
    retry_after_cap: float = 30.0
    backoff_initial: float = 0.5
    backoff_max: float = 8.0
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], Awaitable[None]] = trio.sleep

    def delay(self, exc: LLMError, retries_done: int) -> float | None:
        """Seconds to wait before the next attempt, or None to give up and raise ``exc``."""
        if retries_done >= self.max_retries or not is_retryable(exc):
            return None
        if exc.retry_after is not None:
            return exc.retry_after if exc.retry_after <= self.retry_after_cap else None
        ceiling = min(self.backoff_max, self.backoff_initial * 2.0**retries_done)
        # "Equal jitter": at least half the exponential step, so retries still spread out.
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)
