"""The serving process's interpreter settings (applied in a child: they are process-wide)."""

from __future__ import annotations

import json
import subprocess
import sys

from app.runtime import GC_THRESHOLDS, SWITCH_INTERVAL_S

PROBE = """
import gc, json, sys
before = gc.get_freeze_count()
from app.runtime import tune_for_serving
tune_for_serving()
print(json.dumps([sys.getswitchinterval(), gc.get_threshold(), before, gc.get_freeze_count()]))
"""


def test_tune_for_serving_sets_gil_and_gc_pacing() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    interval, thresholds, frozen_before, frozen_after = json.loads(done.stdout)
    assert abs(interval - SWITCH_INTERVAL_S) < 1e-9 and interval < 0.005  # CPython: 5 ms
    assert tuple(thresholds) == GC_THRESHOLDS and thresholds[0] > 700
    assert frozen_before == 0 and frozen_after > 1000  # start-up objects left out of GC
