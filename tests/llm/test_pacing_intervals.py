"""StreamPacing: reads as data comes up to 64 open streams, spaced up to the ceiling beyond."""

from __future__ import annotations

import pytest

from llm import LLMSettings
from llm.pacing import STREAMS_PER_STEP, StreamPacing


def test_defaults_read_at_once_up_to_64_open_streams() -> None:
    settings = LLMSettings()
    pacing = StreamPacing(settings.stream_batch, settings.stream_batch_max)
    assert STREAMS_PER_STEP == 64 and pacing.enabled
    for active in (0, 1, 10, STREAMS_PER_STEP):
        pacing.active = active
        assert pacing.interval() == 0


def test_defaults_never_exceed_300_ms() -> None:
    settings = LLMSettings()
    pacing = StreamPacing(settings.stream_batch, settings.stream_batch_max)
    intervals = []
    for active in range(STREAMS_PER_STEP + 1, 20_000, 7):
        pacing.active = active
        intervals.append(pacing.interval())
    assert intervals == sorted(intervals)  # grows with load
    assert 0 < intervals[0] < 0.01 and max(intervals) == 0.3


def test_interval_ramps_from_base_to_the_ceiling() -> None:
    pacing = StreamPacing(0.0, 0.3, streams_per_step=100)
    pacing.active = 100
    assert pacing.interval() == 0
    pacing.active = 200
    assert pacing.interval() == pytest.approx(0.15)
    pacing.active = 300
    assert pacing.interval() == pytest.approx(0.3)
    pacing.active = 10_000
    assert pacing.interval() == 0.3


def test_base_holds_up_to_one_step() -> None:
    pacing = StreamPacing(0.02, 0.3)
    pacing.active = STREAMS_PER_STEP
    assert pacing.interval() == 0.02
    pacing.active = STREAMS_PER_STEP * 2
    assert pacing.interval() == pytest.approx(0.02 + 0.28 / 2)


def test_ceiling_below_base_means_no_adaptation() -> None:
    pacing = StreamPacing(0.2, 0.1)
    pacing.active = 10_000
    assert pacing.interval() == 0.2


def test_zero_ceiling_disables_pacing() -> None:
    pacing = StreamPacing(0, 0)
    pacing.active = 10_000
    assert not pacing.enabled and pacing.interval() == 0


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        StreamPacing(-1, 0.3)
    with pytest.raises(ValueError):
        StreamPacing(0.1, 0.3, streams_per_step=0)
