"""How often a streamed reply's socket is read: every ``base`` seconds at light load, less
often as more streams are open at once.

Each network read of a stream costs a fixed ~100 µs of CPU (a trio wake-up and timer, httpx's
iterator chain, httpcore's read) however many tokens it brings, so reading less often is what
lets one process keep up with many streams. At light load the cadence stays at ``base``
(0.1 s: text appears ten times a second); past ``streams_per_step`` open streams the interval
grows in proportion, up to ``ceiling``, so a loaded process spends its CPU relaying text
instead of waking up for every token. The first token of a reply is never delayed.
"""

from __future__ import annotations

STREAMS_PER_STEP = 64  # FASTNPC_LLM_MAX_CONCURRENCY's default: no adaptation below it


class StreamPacing:
    """The read interval for the streams of one client, from how many are open."""

    __slots__ = ("base", "ceiling", "streams_per_step", "active")

    def __init__(
        self, base: float, ceiling: float, *, streams_per_step: int = STREAMS_PER_STEP
    ) -> None:
        if base < 0 or streams_per_step < 1:
            raise ValueError("base must be >= 0 and streams_per_step >= 1")
        self.base = base
        self.ceiling = max(base, ceiling)
        self.streams_per_step = streams_per_step
        self.active = 0  # streams open now (kept by the client)

    def interval(self) -> float:
        """Seconds from one delivery to the next network read."""
        if self.active <= self.streams_per_step:
            return self.base
        return min(self.ceiling, self.base * self.active / self.streams_per_step)
