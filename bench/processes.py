"""One process against two sharing Redis and PostgreSQL: `streamN`, same fake upstream, one run.

    .venv/bin/python -m bench.processes --streams 1000 \\
        --database-url postgresql://postgres@127.0.0.1:5432/test --redis-url redis://127.0.0.1:6379/0

Three setups, one after the other against the same fake upstream, each on a fresh PostgreSQL
schema (dropped afterwards) and its own Redis key prefix (deleted afterwards):

- ``1 process``: ``fastnpc serve``, no Redis (the single-process default, on PostgreSQL);
- ``1 process + Redis``: the same with ``FASTNPC_REDIS_URL``: every event is also published to
  Redis (this row minus the first is the cost of publishing);
- ``2 processes + Redis``: ``fastnpc serve --workers 2`` sharing the listening socket, Redis
  and the database: one service, its limits shared.

It prints one JSON line per setup and a table with each setup's ratio to ``1 process``, and the
server CPU per upstream chunk that the second setup spent more than the first.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import trio

from app.services.redis_link import delete_keys, make_client
from bench.fdlimit import raise_fd_limit
from bench.procs import start_fake, start_fastnpc
from bench.run import parse_args as run_args
from bench.run import run_server

SETUPS = [("1 process", 1, False), ("1 process + Redis", 1, True), ("2 processes + Redis", 2, True)]
METRICS = [
    "wall_s",
    "ttfd_p50_s",
    "ttfd_p99_s",
    "max_gap_p99_s",
    "errors",
    "deltas",
    "server_cpu_s",
    "server_cpu_us_per_delta",
    "server_cpu_us_per_upstream_chunk",
]


def _schema(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


async def _delete_prefix(url: str, prefix: str) -> None:
    async with make_client(url) as client:
        await delete_keys(client, prefix)


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    log_dir = Path(tempfile.mkdtemp(prefix="fastnpc-procs-"))
    run = run_args(["--scenarios", f"stream{args.streams}", "--skip-reference"])
    run.json_out = None
    fake = await trio.to_thread.run_sync(
        lambda: start_fake(log_dir, ttft=run.ttft, tokens=run.tokens, tps=run.tps, chunk_chars=4)
    )
    limits = httpx.Limits(max_connections=run.max_connections, max_keepalive_connections=None)
    try:
        async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(120.0)) as client:
            for name, workers, redis in [SETUPS[i - 1] for i in args.setups]:
                schema = f"bench_{secrets.token_hex(4)}"
                prefix = f"bench-{secrets.token_hex(4)}"
                await trio.to_thread.run_sync(_schema, args.database_url, f"CREATE SCHEMA {schema}")
                separator = "&" if "?" in args.database_url else "?"
                options = quote(f"-csearch_path={schema}", safe="")
                env = {
                    "FASTNPC_DATABASE_URL": f"{args.database_url}{separator}options={options}",
                    "FASTNPC_DB_POOL_SIZE": str(args.pool_size),
                }
                if redis:
                    env |= {"FASTNPC_REDIS_URL": args.redis_url, "FASTNPC_REDIS_PREFIX": prefix}
                slug = name.replace(" ", "").replace("+", "-")
                try:
                    server = await trio.to_thread.run_sync(
                        partial(
                            start_fastnpc,
                            log_dir,
                            fake.url,
                            workers=workers,
                            max_concurrency=run.max_concurrency,
                            extra_env=env,
                            name=slug,
                        )
                    )
                    lines: list[dict[str, Any]] = []
                    await run_server(name, server, fake, client, run, lines)
                    results.extend(line for line in lines if "scenario" in line)
                finally:
                    await trio.to_thread.run_sync(
                        _schema, args.database_url, f"DROP SCHEMA {schema} CASCADE"
                    )
                    if redis:
                        await _delete_prefix(args.redis_url, prefix)
    finally:
        await trio.to_thread.run_sync(fake.stop)
        shutil.rmtree(log_dir, ignore_errors=True)
    return results


def table(results: list[dict[str, Any]]) -> str:
    base = results[0]
    names = [r["server"] for r in results]
    rows = [
        "| metric | "
        + " | ".join(names)
        + " | "
        + " | ".join(f"{n} / 1 process" for n in names[1:])
        + " |",
        "|---|" + "---:|" * (2 * len(names) - 1),
    ]
    for metric in METRICS:
        values = [r.get(metric) for r in results]
        ratios = [
            f"{v / base[metric]:.3g}" if isinstance(v, int | float) and base.get(metric) else "—"
            for v in values[1:]
        ]
        cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in values]
        rows.append(f"| {metric} | " + " | ".join(cells + ratios) + " |")
    metric = "server_cpu_us_per_upstream_chunk"  # comparable whatever the delta grouping
    if len(results) > 1 and base.get(metric):
        extra = results[1][metric] - base[metric]
        rows.append(
            f"\nWith Redis, one process: {extra:+.1f} µs of server CPU per upstream chunk "
            "(the publishing cost alone, without the noise of a whole run: bench/relay_bench.py)."
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.processes", description=__doc__)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--pool-size", type=int, default=20, help="FASTNPC_DB_POOL_SIZE")
    parser.add_argument(
        "--setups",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 2, 3],
        help="which setups to run, 1-based, comma separated (default: 1,2,3)",
    )
    args = parser.parse_args(argv)
    raise_fd_limit()
    started = time.monotonic()
    results = trio.run(main_async, args)
    print()
    print(table(results))
    print(f"\nTotal run time {time.monotonic() - started:.0f} s.")


if __name__ == "__main__":
    main()
