"""The per-request CPU floor of FastNPC's HTTP stack for the stream scenarios' request.

``python -m bench.floor`` sends N concurrent ``POST /api/characters/{id}/chat`` (SSE, bearer
token, the same bytes as ``bench.run``'s ``streamN``: `bench.scenarios.chat_stream_request`)
through the same driver (`bench.scenarios.run_streams`: raw sockets, one epoll loop) to each of
`bench.floor_apps`' servers in turn, each in its own process, and reports the server's CPU per
request and when the streams got their `delta`. The servers do nothing but HTTP (no auth,
database or LLM), so their CPU per request ``c`` is a floor under FastNPC's: with the GIL
serialising every request's setup, the request ranked 99th percentile (the 990th of 1,000)
cannot get its first delta before ``990 · c`` plus the upstream's first-token delay
(``ttft_plus_p99_cpu_s``; ``c`` here is the whole request's CPU, so it slightly overstates the
part before the first delta). ``--delay 2`` makes the servers wait like the fake upstream and
measures that time directly. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import trio

from bench.fdlimit import raise_fd_limit
from bench.floor_apps import VARIANTS
from bench.procs import start_floor, wait_ready
from bench.scenarios import (
    Account,
    chat_stream_request,
    percentile,
    run_streams,
    stream_fields,
)


def p99_rank(count: int) -> int:
    """How many requests the nearest-rank 99th percentile of ``count`` waits for (990 of
    1,000; the rank `bench.scenarios.percentile` uses)."""
    return round(percentile([float(rank) for rank in range(1, count + 1)], 99) or 0)


def requests_for(host: str, count: int) -> list[bytes]:
    """``count`` stream requests, each with its own token and character id."""
    accounts = [Account(secrets.token_urlsafe(32), str(index + 1)) for index in range(count)]
    return [chat_stream_request(host, account) for account in accounts]


async def run_variant(
    variant: str, args: argparse.Namespace, log_dir: Path, client: httpx.AsyncClient
) -> dict[str, Any]:
    """Start ``variant``'s server, warm it up, measure ``args.streams`` streams, stop it."""
    server = await trio.to_thread.run_sync(lambda: start_floor(log_dir, variant, delay=args.delay))
    try:
        with trio.fail_after(args.ready_timeout):
            await wait_ready(server, client)
        host = httpx.URL(server.url).netloc.decode()
        if args.warmup:
            await run_streams(server, requests_for(host, args.warmup))
        run = await run_streams(server, requests_for(host, args.streams))
    finally:
        await trio.to_thread.run_sync(server.stop)
    fields = stream_fields(run)
    per_request = run.usage.server_cpu / args.streams
    rank = p99_rank(args.streams)
    return {
        "bench": "floor",
        "variant": variant,
        "delay_s": args.delay,
        **fields,
        "server_cpu_us_per_request": round(per_request * 1e6, 1),
        "p99_rank": rank,
        "ttft_plus_p99_cpu_s": round(args.ttft + rank * per_request, 3),
    }


async def run_floor(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every variant in ``args.variants``, ``args.repeat`` rounds (A/B/C, A/B/C, ...); prints
    and returns one result per run."""
    log_dir = Path(tempfile.mkdtemp(prefix="fastnpc-floor-"))
    results = []
    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0)) as client:
            for round_ in range(args.repeat):
                for variant in args.variants:
                    result = {
                        "round": round_ + 1,
                        **await run_variant(variant, args, log_dir, client),
                    }
                    print(json.dumps(result), flush=True)
                    if args.json_out:
                        with args.json_out.open("a") as out:
                            out.write(json.dumps(result) + "\n")
                    results.append(result)
    finally:
        if args.keep_logs:
            print(f"# logs in {log_dir}")
        else:
            shutil.rmtree(log_dir, ignore_errors=True)
    return results


COLUMNS = [
    ("variant", "variant"),
    ("round", "round"),
    ("ok", "ok"),
    ("server_cpu_s", "server CPU s"),
    ("server_cpu_us_per_request", "CPU µs / request"),
    ("ttfd_p50_s", "TTFD p50 s"),
    ("ttfd_p99_s", "TTFD p99 s"),
    ("wall_s", "wall s"),
    ("ttft_plus_p99_cpu_s", "ttft + p99 rank × CPU/request s"),
]


def markdown_table(results: list[dict[str, Any]]) -> str:
    """One row per run."""
    lines = [
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|---|" + "---:|" * (len(COLUMNS) - 1),
    ]
    for result in results:
        lines.append("| " + " | ".join(str(result.get(key)) for key, _ in COLUMNS) + " |")
    return "\n".join(lines)


SUMMARY = [
    ("server_cpu_us_per_request", "CPU µs / request"),
    ("ttfd_p50_s", "TTFD p50 s"),
    ("ttfd_p99_s", "TTFD p99 s"),
    ("wall_s", "wall s"),
]


def summary_table(results: list[dict[str, Any]]) -> str:
    """Per variant, the median of each round's figures, and its CPU per request over the first
    variant's."""
    variants = list(dict.fromkeys(r["variant"] for r in results))
    medians = {
        variant: {
            key: statistics.median(
                r[key] for r in results if r["variant"] == variant and r[key] is not None
            )
            for key, _ in SUMMARY
        }
        for variant in variants
    }
    base = medians[variants[0]]["server_cpu_us_per_request"]
    lines = [
        "| variant (median of rounds) | "
        + " | ".join(title for _, title in SUMMARY)
        + f" | CPU / {variants[0]}'s |",
        "|---|" + "---:|" * (len(SUMMARY) + 1),
    ]
    for variant, figures in medians.items():
        cells = [f"{figures[key]:g}" for key, _ in SUMMARY]
        ratio = figures["server_cpu_us_per_request"] / base if base else float("nan")
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {ratio:.2f} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--streams", type=int, default=1000, help="concurrent requests")
    parser.add_argument(
        "--variants",
        type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
        default=list(VARIANTS),
        help=f"comma separated, in this order each round (default: {','.join(VARIANTS)})",
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds over the variants")
    parser.add_argument(
        "--warmup", type=int, default=10, help="streams sent before the measured ones (0: none)"
    )
    parser.add_argument(
        "--delay", type=float, default=0.0, help="server waits this long before the delta (s)"
    )
    parser.add_argument(
        "--ttft",
        type=float,
        default=2.0,
        help="first-token delay added in ttfd_p99_bound_s (the fake upstream's in bench.run)",
    )
    parser.add_argument("--ready-timeout", type=float, default=30.0)
    parser.add_argument("--json-out", type=Path, help="append every result line to this file")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    return args


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m bench.floor``."""
    args = parse_args(argv)
    raise_fd_limit()
    started = time.monotonic()
    results = trio.run(run_floor, args)
    print()
    print(markdown_table(results))
    if args.repeat > 1:
        print()
        print(summary_table(results))
    print(f"\n{args.streams} streams per run; total run time {time.monotonic() - started:.0f} s.")


if __name__ == "__main__":
    main()
