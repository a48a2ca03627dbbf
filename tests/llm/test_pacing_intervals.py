"""StreamPacing: the read interval stays at its base at light load and grows with open streams."""

from __future__ import annotations

import pytest

from llm.pacing import STREAMS_PER_STEP, StreamPacing


def test_base_interval_up_to_one_step_of_streams() -> None:
    pacing = StreamPacing(0.1, 0.3)
    for active in (0, 1, STREAMS_PER_STEP):
        pacing.active = active
        assert pacing.interval() == 0.1


def test_interval_grows_with_open_streams_up_to_the_ceiling() -> None:
    pacing = StreamPacing(0.1, 0.3, streams_per_step=100)
    pacing.active = 150
    assert pacing.interval() == pytest.approx(0.15)
    pacing.active = 250
    assert pacing.interval() == pytest.approx(0.25)
    pacing.active = 10_000
    assert pacing.interval() == 0.3


def test_ceiling_below_base_means_no_adaptation() -> None:
    pacing = StreamPacing(0.2, 0.1)
    pacing.active = 10_000
    assert pacing.interval() == 0.2


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        StreamPacing(-1, 0.3)
    with pytest.raises(ValueError):
        StreamPacing(0.1, 0.3, streams_per_step=0)
