"""How often a streamed reply's socket is read: as data comes while few streams are open,
less often as more are open at once.

API.md's cadence: while the process has at most 64 open streams a token reaches the client
within 50 ms of arriving from the provider; under heavier load tokens may be grouped into one
``delta``, none held longer than 300 ms; the first token is never held.

Each network read of a stream costs a fixed CPU price (a trio wake-up and timer, httpx's
iterator chain, the transport's read; ~20 µs with ``llm.h1``) however many tokens it brings,
so reading less often is what lets one process keep up with many streams. Up to
``streams_per_step`` open streams the interval is ``base`` (default 0: read as data comes, one
``delta`` per token). Beyond that it
rises linearly from ``base`` to ``ceiling`` (default 0.3 s), reached at
``3 * streams_per_step`` open streams, so a loaded process spends its CPU relaying text
instead of waking up for every token. The interval never exceeds ``ceiling``.
"""

from __future__ import annotations

STREAMS_PER_STEP = 64  # API.md: at most this many open streams means no grouping
# Past STREAMS_PER_STEP open streams the interval reaches the ceiling after this many more steps.
RAMP_STEPS = 2


class StreamPacing:
    """The read interval for the streams of one client, from how many are open."""

    __slots__ = ("base", "ceiling", "streams_per_step", "active")

    def __init__(
        self, base: float, ceiling: float, *, streams_per_step: int = STREAMS_PER_STEP
    ) -> None:
        if base < 0 or ceiling < 0 or streams_per_step < 1:
            raise ValueError("base and ceiling must be >= 0 and streams_per_step >= 1")
        self.base = base
        self.ceiling = max(base, ceiling)
        self.streams_per_step = streams_per_step
        self.active = 0  # streams open now (kept by the client)

    @property
    def enabled(self) -> bool:
        """Whether reads are ever spaced (otherwise every read happens as data comes)."""
        return self.ceiling > 0

    def interval(self) -> float:
        """Seconds from one delivery to the next network read (0: read at once)."""
        step = self.streams_per_step
        excess = self.active - step
        if excess <= 0:
            return self.base
        ramp = (self.ceiling - self.base) * excess / (RAMP_STEPS * step)
        return min(self.ceiling, self.base + ramp)
