"""Where the client reports each successful call's usage, per caller (``user=``).

The client stays free of storage: the composition root passes an object with an async
``record`` (e.g. one database upsert); the client awaits it once per successful call, after
the limiter slot is released and before the ``stream`` block or ``complete`` returns, so a
caller's next call sees it. ``record`` must not raise; it runs shielded, bounded by
``RECORD_GRACE`` seconds.
"""

from __future__ import annotations

from typing import Protocol

from llm.types import Usage

RECORD_GRACE = 10.0


class UsageSink(Protocol):
    async def record(self, user: str | None, model: str, usage: Usage) -> None:
        """Account ``usage`` of one call to ``model`` made for ``user`` (the ``user=``
        argument of the call)."""
        ...
