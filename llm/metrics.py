"""Per-model call metrics: prometheus-client series plus a snapshot for the admin API."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import prometheus_client as prom

from llm.types import Usage

# Percentiles come from this many most recent samples per model.
SAMPLE_WINDOW = 1000

_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)

# Model names not configured get their own series up to this many; the rest share OTHER_MODEL.
MAX_OTHER_MODELS = 50
OTHER_MODEL = "other"


@dataclass
class _ModelStats:
    calls: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLE_WINDOW))
    first_token: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLE_WINDOW))


def _percentile(samples: deque[float], q: float) -> float:
    """Nearest-rank percentile in milliseconds; 0.0 when there are no samples."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    rank = max(0, math.ceil(q * len(ordered)) - 1)
    return round(ordered[rank] * 1000, 3)


class LLMMetrics:
    """Metrics of LLM calls, labelled by model.

    Registered in ``registry`` (default: a private ``CollectorRegistry``, so
    several clients can coexist; pass the app's registry to export them).

    Model names come from users, so the set of labels is bounded: configured models
    (``known_models``, or later ``add_known_models``) always have their own series, plus at
    most ``max_other`` distinct others (first come, first kept); every further name is
    counted under ``"other"``.
    """

    def __init__(
        self,
        registry: prom.CollectorRegistry | None = None,
        *,
        known_models: Iterable[str] = (),
        max_other: int = MAX_OTHER_MODELS,
    ) -> None:
        self.registry = registry if registry is not None else prom.CollectorRegistry()
        self._known: set[str] = set(known_models)
        self._others: set[str] = set()
        self._max_other = max_other
        reg = self.registry
        self._calls = prom.Counter(
            "fastnpc_llm_calls", "Logical LLM calls", ["model"], registry=reg
        )
        self._errors = prom.Counter(
            "fastnpc_llm_errors", "Failed logical LLM calls", ["model", "kind"], registry=reg
        )
        self._retries = prom.Counter(
            "fastnpc_llm_retries", "Extra LLM attempts", ["model"], registry=reg
        )
        self._latency = prom.Histogram(
            "fastnpc_llm_latency_seconds",
            "Duration of successful LLM calls",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self._first_token = prom.Histogram(
            "fastnpc_llm_first_token_seconds",
            "Time from the start of a call to its first token",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self._prompt_tokens = prom.Counter(
            "fastnpc_llm_prompt_tokens", "Prompt tokens", ["model"], registry=reg
        )
        self._completion_tokens = prom.Counter(
            "fastnpc_llm_completion_tokens", "Completion tokens", ["model"], registry=reg
        )
        self._cost = prom.Counter(
            "fastnpc_llm_cost_usd", "Cost reported by the provider", ["model"], registry=reg
        )
        self._models: dict[str, _ModelStats] = {}

    def add_known_models(self, models: Iterable[str]) -> None:
        """Give these (configured) models their own series, whatever else was seen."""
        for model in models:
            self._known.add(model)
            self._others.discard(model)

    def label(self, model: str) -> str:
        """The label ``model`` is counted under: itself, or ``"other"`` past the bound."""
        if model in self._known or model in self._others:
            return model
        if len(self._others) < self._max_other:
            self._others.add(model)
            return model
        return OTHER_MODEL

    def _stats(self, label: str) -> _ModelStats:
        stats = self._models.get(label)
        if stats is None:
            stats = self._models[label] = _ModelStats()
        return stats

    def record_call(self, model: str) -> None:
        """Count one logical call (retries are not separate calls)."""
        model = self.label(model)
        self._stats(model).calls += 1
        self._calls.labels(model).inc()

    def record_retry(self, model: str) -> None:
        """Count one extra attempt."""
        model = self.label(model)
        self._stats(model).retries += 1
        self._retries.labels(model).inc()

    def record_first_token(self, model: str, seconds: float) -> None:
        """Time from the start of the call to its first token."""
        model = self.label(model)
        self._stats(model).first_token.append(seconds)
        self._first_token.labels(model).observe(seconds)

    def record_success(self, model: str, seconds: float, usage: Usage | None) -> None:
        """A call finished: its duration and, when reported, usage and cost."""
        model = self.label(model)
        stats = self._stats(model)
        stats.latency.append(seconds)
        self._latency.labels(model).observe(seconds)
        if usage is not None:
            stats.prompt_tokens += usage.prompt_tokens
            stats.completion_tokens += usage.completion_tokens
            stats.cost += usage.cost
            self._prompt_tokens.labels(model).inc(usage.prompt_tokens)
            self._completion_tokens.labels(model).inc(usage.completion_tokens)
            self._cost.labels(model).inc(usage.cost)

    def record_error(self, model: str, kind: str) -> None:
        """A call failed with an error of class ``kind`` (e.g. ``"RateLimited"``)."""
        model = self.label(model)
        errors = self._stats(model).errors
        errors[kind] = errors.get(kind, 0) + 1
        self._errors.labels(model, kind).inc()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Per model: calls, errors, retries, latency/first-token p50/p95 (ms), tokens, cost.

        ``errors`` is the total; ``errors_by_kind`` breaks it down by error class.
        Percentiles are 0.0 until a sample exists.
        """
        return {
            model: {
                "calls": s.calls,
                "errors": sum(s.errors.values()),
                "errors_by_kind": dict(s.errors),
                "retries": s.retries,
                "latency_ms": {
                    "p50": _percentile(s.latency, 0.50),
                    "p95": _percentile(s.latency, 0.95),
                },
                "first_token_ms": {
                    "p50": _percentile(s.first_token, 0.50),
                    "p95": _percentile(s.first_token, 0.95),
                },
                "prompt_tokens": s.prompt_tokens,
                "completion_tokens": s.completion_tokens,
                "cost": round(s.cost, 8),
            }
            for model, s in self._models.items()
        }
