"""The final markdown table: key metrics per scenario, ours vs reference, and their ratio."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

STREAM_METRICS = [
    "wall_s",
    "latency_p50_s",
    "latency_p99_s",
    "ttfd_p50_s",
    "ttfd_p99_s",
    "ttfe_p99_s",
    "max_gap_p99_s",
    "deltas",
    "chars",
    "errors",
    "server_cpu_s",
    "server_cpu_us_per_delta",
    "server_cpu_us_per_upstream_chunk",
    "server_rss_peak_mb",
    "rss_per_stream_kb",
    "fake_cpu_s",
    "driver_cpu_s",
]
METRICS: dict[str, list[str]] = {
    "chat": ["wall_s", "latency_p50_s", "latency_p99_s", "ttfd_p50_s", "errors"],
    "stream": STREAM_METRICS,
    "gen": ["wall_s", "latency_p50_s", "latency_max_s", "errors", "partial", "server_cpu_s"],
    "group": ["wall_s", "single_reply_s", "group_over_single", "speakers"],
    "continue": ["wall_s", "single_reply_s", "continue_over_single", "rounds", "replies"],
    "zero": [
        "rps",
        "requests",
        "errors",
        "latency_p50_ms",
        "latency_p99_ms",
        "server_cpu_ms_per_request",
        "fake_cpu_ms_per_request",
        "driver_cpu_s",
    ],
}


def _metrics_for(scenario: str) -> list[str]:
    for prefix, metrics in METRICS.items():
        if scenario.startswith(prefix):
            return metrics
    return ["wall_s"]


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown_table(results: list[dict[str, Any]], scenarios: list[str]) -> str:
    """One row per (scenario, metric): FastNPC, reference, ours/reference."""
    by_key = {(line["scenario"], line["server"]): line for line in results if "scenario" in line}
    rows = [
        "| scenario | metric | FastNPC | reference | ours/ref |",
        "|---|---|---:|---:|---:|",
    ]
    for name in scenarios:
        ours = by_key.get((name, "fastnpc"), {})
        ref = by_key.get((name, "reference"), {})
        if not ours and not ref:
            continue
        for metric in _metrics_for(name):
            a, b = ours.get(metric), ref.get(metric)
            ratio = (
                f"{a / b:.3g}"
                if isinstance(a, int | float) and isinstance(b, int | float) and b
                else "—"
            )
            rows.append(f"| {name} | {metric} | {_fmt(a)} | {_fmt(b)} | {ratio} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.report a.jsonl [b.jsonl ...]``: one table from saved ``--json-out`` runs.

    Later files win for a (scenario, server) pair, so separate FastNPC and reference runs
    combine into one comparison.
    """
    paths = sys.argv[1:] if argv is None else argv
    lines = [json.loads(line) for path in paths for line in Path(path).read_text().splitlines()]
    scenarios = list(dict.fromkeys(line["scenario"] for line in lines if "scenario" in line))
    print(markdown_table(lines, scenarios))


if __name__ == "__main__":
    main()
