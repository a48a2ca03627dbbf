"""Metrics: prometheus series in a private registry and the admin snapshot."""

from __future__ import annotations

import httpx
import prometheus_client
import pytest

from llm import LLMLimiter, LLMSettings, OpenRouterClient
from llm.metrics import MAX_OTHER_MODELS, OTHER_MODEL, SAMPLE_WINDOW, LLMMetrics
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


def _label_values(metrics: LLMMetrics) -> set[str]:
    return {
        sample.labels["model"]
        for family in metrics.registry.collect()
        for sample in family.samples
        if "model" in sample.labels
    }


def test_model_labels_are_bounded() -> None:
    metrics = LLMMetrics(known_models=["conf/a", "conf/b"])
    for i in range(MAX_OTHER_MODELS + 200):
        model = f"user/model-{i}"
        metrics.record_call(model)
        metrics.record_retry(model)
        metrics.record_first_token(model, 0.1)
        metrics.record_success(model, 0.2, Usage(1, 1, 0.0))
        metrics.record_error(model, "BadRequest")
    for model in ("conf/a", "conf/b"):  # configured models keep their series past the bound
        metrics.record_call(model)
    labels = _label_values(metrics)
    firsts = {f"user/model-{i}" for i in range(MAX_OTHER_MODELS)}
    assert labels == firsts | {"conf/a", "conf/b", OTHER_MODEL}
    snapshot = metrics.snapshot()
    assert set(snapshot) == labels
    assert snapshot[OTHER_MODEL]["calls"] == 200 and snapshot[OTHER_MODEL]["errors"] == 200
    assert snapshot["user/model-0"]["calls"] == 1 and snapshot["conf/a"]["calls"] == 1
    value = metrics.registry.get_sample_value
    assert value("fastnpc_llm_calls_total", {"model": OTHER_MODEL}) == 200
    assert value("fastnpc_llm_calls_total", {"model": f"user/model-{MAX_OTHER_MODELS}"}) is None
    # a name already kept stays itself; a new one still goes to "other"
    assert metrics.label("user/model-3") == "user/model-3"
    assert metrics.label("another/one") == OTHER_MODEL


async def test_configured_models_from_settings_are_known() -> None:
    # The client registers FASTNPC_MODEL and FASTNPC_MODELS with its metrics, so they keep
    # their own series even after 50 other names were seen.
    settings = LLMSettings(api_key="k", model="conf/default", models="conf/x, conf/y")
    metrics = LLMMetrics(max_other=0)
    async with httpx.AsyncClient() as http:
        OpenRouterClient(http, LLMLimiter(1, per_user=1, queue_timeout=1), settings, metrics)
    assert [metrics.label(m) for m in ("conf/default", "conf/x", "conf/y", "user/z")] == [
        "conf/default",
        "conf/x",
        "conf/y",
        OTHER_MODEL,
    ]
