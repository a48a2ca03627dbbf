"""Load driver: FastNPC vs the origin plan's reference server, against one fake upstream.

Run ``python -m bench.run`` (or ``python bench/run.py``) from the repository root. It starts
the fake upstream (own process), then FastNPC (``fastnpc serve``, own process, temporary
SQLite), runs the scenarios, stops it, then does the same with the reference server
(``python -m bench.reference``, uvicorn). It prints one JSON line per scenario and server and
a final markdown table with ours/reference ratios. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import psutil  # type: ignore[import-untyped]
import trio

from bench.fdlimit import raise_fd_limit
from bench.procs import Managed, start_fake, start_fastnpc, start_reference, wait_ready
from bench.report import markdown_table
from bench.scenarios import (
    Target,
    concurrent_streams,
    continue_rounds,
    generations,
    group_turn,
    zero_latency,
)

Scenario = Callable[[Target], Awaitable[dict[str, Any]]]

ALL_SCENARIOS = [
    "chat10",
    "stream100",
    "stream500",
    "stream1000",
    "gen1",
    "gen10",
    "group",
    "continue",
    "zero",
]
CONCURRENCY_NOTE = (
    "note: LLM concurrency limit raised (FASTNPC_LLM_MAX_CONCURRENCY={n}; the reference's "
    "asyncio.Semaphore({n})) so the limiter is not what is measured"
)


def scenario(name: str, args: argparse.Namespace) -> tuple[Scenario, int]:
    """The scenario function for ``name`` and how many shared accounts it needs."""
    prefix = name.rstrip("0123456789")
    count = int(name[len(prefix) :] or 0)
    if prefix in ("stream", "chat") and count:
        return (lambda t: concurrent_streams(t, count, name)), count
    if prefix == "gen" and count:
        return (lambda t: generations(t, count, name)), count
    if name == "group":
        return (lambda t: group_turn(t, name)), 0
    if name == "continue":
        return (lambda t: continue_rounds(t, name)), 0
    if name == "zero":
        return (
            lambda t: zero_latency(t, name, clients=args.zero_clients, seconds=args.zero_seconds)
        ), 0
    raise SystemExit(f"unknown scenario {name!r}; known: {', '.join(ALL_SCENARIOS)} (or streamN)")


def emit(line: dict[str, Any], sink: list[dict[str, Any]], json_out: Path | None) -> None:
    """Print one JSON line, keep it for the table, and append it to ``--json-out`` at once
    (so a run that dies half way still leaves what it measured)."""
    sink.append(line)
    print(json.dumps(line), flush=True)
    if json_out:
        with json_out.open("a") as out:
            out.write(json.dumps(line) + "\n")


async def run_server(
    name: str,
    server: Managed,
    fake: Managed,
    client: httpx.AsyncClient,
    args: argparse.Namespace,
    results: list[dict[str, Any]],
) -> None:
    """Wait for ``server``, register accounts, run every selected scenario, stop it."""
    try:
        with trio.fail_after(args.ready_timeout):
            await wait_ready(server, client)
        behaviour = {"first_token_delay": args.ttft, "tokens_per_second": args.tps}
        target = Target(name, server, fake, client, uuid.uuid4().hex[:8], behaviour, args.tokens)
        await target.set_fake(**behaviour)
        chosen = [scenario(s, args) for s in args.scenarios]
        accounts = max(count for _, count in chosen)
        start = trio.current_time()
        await target.ensure_accounts(accounts)
        emit(
            {
                "setup": name,
                "pid": server.pid,
                "processes": len(server.refresh_tree()),
                "accounts": accounts,
                "register_s": round(trio.current_time() - start, 2),
                "rss_idle_mb": round(server.rss_bytes() / 2**20, 1),
            },
            results,
            args.json_out,
        )
        for run, _ in chosen:
            await trio.sleep(args.pause)
            for process in (fake, server):
                if process.popen.poll() is not None:
                    raise RuntimeError(f"{process.name} exited:\n{process.tail()}")
            leftover = 0
            with trio.move_on_after(args.idle_timeout) as idle_wait:
                leftover = await target.wait_upstream_idle()
            if leftover or idle_wait.cancelled_caught:
                print(
                    f"# {name}: {leftover} upstream calls still in flight from the previous "
                    f"scenario{' (gave up waiting)' if idle_wait.cancelled_caught else ''}",
                    flush=True,
                )
            emit(await run(target), results, args.json_out)
    finally:
        await trio.to_thread.run_sync(server.stop)


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Start the fake and each server in turn; return every result line."""
    results: list[dict[str, Any]] = []
    log_dir = Path(tempfile.mkdtemp(prefix="fastnpc-bench-"))
    print(
        f"# machine: {platform.platform()}, {psutil.cpu_count()} cores, python "
        f"{platform.python_version()}; open files {args.fd_limit}; logs in {log_dir}",
        flush=True,
    )
    print(f"# {CONCURRENCY_NOTE.format(n=args.max_concurrency)}", flush=True)
    fake = await trio.to_thread.run_sync(
        lambda: start_fake(
            log_dir, ttft=args.ttft, tokens=args.tokens, tps=args.tps, chunk_chars=args.chunk_chars
        )
    )
    limits = httpx.Limits(max_connections=args.max_connections, max_keepalive_connections=None)
    timeout = httpx.Timeout(120.0, connect=30.0)
    try:
        async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
            if not args.skip_fastnpc:
                ours = await trio.to_thread.run_sync(
                    lambda: start_fastnpc(
                        log_dir,
                        fake.url,
                        workers=args.workers,
                        max_concurrency=args.max_concurrency,
                    )
                )
                await run_server("fastnpc", ours, fake, client, args, results)
            if not args.skip_reference:
                reference = await trio.to_thread.run_sync(
                    lambda: start_reference(log_dir, fake.url, max_concurrency=args.max_concurrency)
                )
                await run_server("reference", reference, fake, client, args, results)
    finally:
        await trio.to_thread.run_sync(fake.stop)
        if not args.keep_logs:
            shutil.rmtree(log_dir, ignore_errors=True)
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument(
        "--scenarios",
        type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
        default=ALL_SCENARIOS,
        help=f"comma separated (default: {','.join(ALL_SCENARIOS)}); streamN/chatN/genN for any N",
    )
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--skip-fastnpc", action="store_true", help="run the reference only")
    parser.add_argument("--workers", type=int, default=1, help="FastNPC worker processes")
    parser.add_argument("--json-out", type=Path, help="write every result line to this file")
    parser.add_argument("--ttft", type=float, default=2.0, help="fake: first-token delay (s)")
    parser.add_argument("--tokens", type=int, default=100, help="fake: chunks per reply")
    parser.add_argument("--tps", type=float, default=50.0, help="fake: chunks per second")
    parser.add_argument("--chunk-chars", type=int, default=4, help="fake: characters per chunk")
    parser.add_argument("--max-concurrency", type=int, default=2000, help="LLM limit, both")
    parser.add_argument("--max-connections", type=int, default=1200, help="driver's pool")
    parser.add_argument("--zero-clients", type=int, default=32)
    parser.add_argument("--zero-seconds", type=float, default=5.0)
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between scenarios")
    parser.add_argument("--ready-timeout", type=float, default=60.0)
    parser.add_argument(
        "--idle-timeout", type=float, default=120.0, help="wait for the upstream to go idle"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    for name in args.scenarios:
        scenario(name, args)  # validate early
    return args


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m bench.run``."""
    args = parse_args(argv)
    args.fd_limit = raise_fd_limit()
    if args.json_out:
        args.json_out.write_text("")
    started = time.monotonic()
    results = trio.run(main_async, args)
    print()
    print(markdown_table(results, args.scenarios))
    print(f"\n{CONCURRENCY_NOTE.format(n=args.max_concurrency)}.")
    print(f"Total run time {time.monotonic() - started:.0f} s; pid {os.getpid()}.")


if __name__ == "__main__":
    main()
