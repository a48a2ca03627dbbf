"""Metrics: prometheus series in a private registry and the admin snapshot."""

from __future__ import annotations

import prometheus_client
import pytest

from llm.metrics import SAMPLE_WINDOW, LLMMetrics
from llm.types import Usage


def test_snapshot_and_series() -> None:
    metrics = LLMMetrics()
    for i in range(1, 101):
        metrics.record_call("m")
        metrics.record_first_token("m", i / 1000)
        metrics.record_success("m", i / 100, Usage(10, 5, 0.001))
    metrics.record_call("m")
    metrics.record_retry("m")
    metrics.record_error("m", "RateLimited")
    snap = metrics.snapshot()["m"]
    assert snap["calls"] == 101 and snap["retries"] == 1
    assert snap["errors"] == 1 and snap["errors_by_kind"] == {"RateLimited": 1}
    assert snap["latency_ms"] == {"p50": 500.0, "p95": 950.0}
    assert snap["first_token_ms"] == {"p50": 50.0, "p95": 95.0}
    assert snap["prompt_tokens"] == 1000 and snap["completion_tokens"] == 500
    assert snap["cost"] == pytest.approx(0.1)
    value = metrics.registry.get_sample_value
    assert value("fastnpc_llm_calls_total", {"model": "m"}) == 101
    assert value("fastnpc_llm_errors_total", {"model": "m", "kind": "RateLimited"}) == 1
    assert value("fastnpc_llm_latency_seconds_count", {"model": "m"}) == 100
    assert value("fastnpc_llm_cost_usd_total", {"model": "m"}) == pytest.approx(0.1)


def test_private_registries_and_window() -> None:
    a, b = LLMMetrics(), LLMMetrics()  # no duplicate-registration error
    assert a.registry is not b.registry is not prometheus_client.REGISTRY
    for i in range(SAMPLE_WINDOW + 500):
        a.record_success("m", 100.0 if i < 500 else 1.0, None)
    assert a.snapshot()["m"]["latency_ms"]["p95"] == 1000.0  # old samples aged out
    assert b.snapshot() == {}


def test_empty_percentiles() -> None:
    metrics = LLMMetrics()
    metrics.record_call("m")
    metrics.record_error("m", "Overloaded")
    assert metrics.snapshot()["m"]["latency_ms"] == {"p50": 0.0, "p95": 0.0}
