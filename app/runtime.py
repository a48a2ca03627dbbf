"""Interpreter settings for a serving process: how the GIL and the cyclic GC are paced.

Measured with ``python -m bench.run --scenarios stream500`` on the 2-core bench machine
(README, "Benchmarks"): the two together cut server CPU from ~10.2 s to ~8.0 s and time to
first delta p99 from ~17 s to ~6 s.

- GIL switch interval 0.5 ms (CPython's default is 5 ms). Database calls run in worker
  threads; each time such a thread releases the GIL around a sqlite3/psycopg call it must
  win it back from the busy event-loop thread, which by default keeps it for up to 5 ms. A
  write transaction releases it several times, so under load every transaction took tens of
  milliseconds of wall time behind the single SQLite writer.
- Cyclic GC: objects alive at start-up (modules, the app, its services) are frozen out of
  collections, and the first generation is collected every 100,000 net allocations instead
  of every 700. A streaming server allocates many short-lived objects per relayed chunk
  (events, buffers, coroutine frames); with hundreds of long-lived connection and task
  objects each young collection was a measurable share of CPU. Reference counting still
  frees nearly everything at once; only cycles wait longer.
"""

from __future__ import annotations

import gc
import sys

SWITCH_INTERVAL_S = 0.0005
GC_THRESHOLDS = (100_000, 50, 100)


def tune_for_serving() -> None:
    """Apply the serving settings to this process (call once the app is built)."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
