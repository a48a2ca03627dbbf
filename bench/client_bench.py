"""LLM client benchmark: CPU per streamed delta, our client vs the openai SDK.

``python -m bench.client_bench`` starts the fake upstream in its own process, then measures
each consumer in its own subprocess so its CPU is attributable to it alone:

- ``ours``: ``llm.OpenRouterClient.stream`` on trio (``llm.make_http_client``, ``LLMLimiter``),
  reading the network every ``--stream-batch`` seconds once tokens flow
  (``LLMSettings.stream_batch``; by default its environment variable or default);
- ``sdk``: ``openai.AsyncOpenAI`` with ``stream=True`` on asyncio.

Each worker runs N concurrent streams twice (the first round warms the connection pool and
lazy imports) and reports the second round: deltas, wall time, and its own CPU
(``time.process_time()``) per delta. Target: ours <= 1/4 of the SDK's CPU per delta.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/client_bench.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fdlimit import raise_fd_limit

KINDS = ("ours", "sdk")
MODEL = "z-ai/glm-4-32b"  # our LLMSettings default, so both ask for the same model


def _messages(index: int) -> list[Any]:  # llm.ChatMessage and the SDK's message params
    return [
        {"role": "system", "content": "You are a benchmark."},
        {"role": "user", "content": f"Stream number {index}, please."},
    ]


# ---- worker: ours (trio)


async def _ours_round(
    base_url: str, streams: int, rounds: int, stream_batch: float | None
) -> dict[str, Any]:
    import trio

    from llm import LLMLimiter, LLMSettings, OpenRouterClient, make_http_client

    batch: dict[str, Any] = {} if stream_batch is None else {"stream_batch": stream_batch}
    settings = LLMSettings(
        api_key="bench-key",
        base_url=base_url,
        max_concurrency=streams * 2,
        max_per_user=streams * 2,
        queue_timeout=60,
        timeout=60,
        idle_timeout=60,
        total_timeout=600,
        **batch,
    )
    limiter = LLMLimiter(settings.max_concurrency, per_user=settings.max_per_user, queue_timeout=60)
    counts = {"deltas": 0, "chars": 0, "errors": 0}

    async with make_http_client(settings) as http:
        client = OpenRouterClient(http, limiter, settings)

        async def one(index: int) -> None:
            try:
                async with client.stream(_messages(index)) as stream:
                    async for delta in stream:
                        counts["deltas"] += 1
                        counts["chars"] += len(delta)
            except Exception:  # counted, not fatal: the CPU figure needs the rest
                counts["errors"] += 1

        for _ in range(rounds):
            counts.update(deltas=0, chars=0, errors=0)
            cpu0, wall0 = time.process_time(), time.monotonic()
            async with trio.open_nursery() as nursery:
                for index in range(streams):
                    nursery.start_soon(one, index)
            cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    return {**counts, "cpu_s": cpu, "wall_s": wall, "stream_batch": settings.stream_batch}


def _run_ours(
    base_url: str, streams: int, rounds: int, stream_batch: float | None
) -> dict[str, Any]:
    import trio

    return trio.run(_ours_round, base_url, streams, rounds, stream_batch)


# ---- worker: the openai SDK (asyncio)


async def _sdk_round(base_url: str, streams: int, rounds: int) -> dict[str, Any]:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key="bench-key")
    counts = {"deltas": 0, "chars": 0, "errors": 0}

    async def one(index: int) -> None:
        try:
            stream = await client.chat.completions.create(
                model=MODEL,
                messages=_messages(index),
                stream=True,
            )
            async for chunk in stream:
                if not chunk.choices:
                    continue
                delta = chunk.choices[0].delta.content
                if delta:
                    counts["deltas"] += 1
                    counts["chars"] += len(delta)
        except Exception:  # counted, not fatal: the CPU figure needs the rest
            counts["errors"] += 1

    for _ in range(rounds):
        counts.update(deltas=0, chars=0, errors=0)
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.gather(*(one(index) for index in range(streams)))
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    await client.close()
    return {**counts, "cpu_s": cpu, "wall_s": wall}


def _run_sdk(base_url: str, streams: int, rounds: int) -> dict[str, Any]:
    return asyncio.run(_sdk_round(base_url, streams, rounds))


def worker(
    kind: str, base_url: str, streams: int, rounds: int, stream_batch: float | None = None
) -> dict[str, Any]:
    """Run one consumer in this process and return its measurement.

    ``stream_batch`` applies to ``ours`` only (None: the `LLMSettings` default or environment).
    """
    raise_fd_limit()
    if kind == "ours":
        result = _run_ours(base_url, streams, rounds, stream_batch)
    else:
        result = _run_sdk(base_url, streams, rounds)
    deltas = result["deltas"]
    return {
        "kind": kind,
        "streams": streams,
        **result,
        "cpu_us_per_delta": round(result["cpu_s"] / deltas * 1e6, 2) if deltas else None,
    }


# ---- parent: fake upstream + one subprocess per measurement


def measure(
    kind: str, base_url: str, streams: int, rounds: int, stream_batch: float | None = None
) -> dict[str, Any]:
    """Run ``worker`` in a fresh subprocess and parse its JSON line."""
    argv = [sys.executable, "-m", "bench.client_bench", "--worker", kind, "--base-url", base_url]
    argv += ["--streams", str(streams), "--rounds", str(rounds)]
    if kind == "ours" and stream_batch is not None:
        argv += ["--stream-batch", repr(stream_batch)]
    done = subprocess.run(
        argv, capture_output=True, text=True, check=False, cwd=Path(__file__).parent.parent
    )
    if done.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m bench.client_bench``."""
    parser = argparse.ArgumentParser(prog="python -m bench.client_bench", description=__doc__)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=100, help="fake: chunks per stream")
    parser.add_argument("--tps", type=float, default=50.0, help="fake: chunks per second")
    parser.add_argument("--ttft", type=float, default=0.1, help="fake: first-token delay (s)")
    parser.add_argument("--chunk-chars", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="measurements per consumer")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per worker; last counts")
    parser.add_argument(
        "--stream-batch",
        type=float,
        metavar="SECONDS",
        help="ours: seconds between network reads once tokens flow (LLMSettings.stream_batch; "
        "default: FASTNPC_LLM_STREAM_BATCH or the LLMSettings default)",
    )
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--worker", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.repeat < 1:
        parser.error("--rounds and --repeat must be >= 1")
    if args.worker:
        result = worker(args.worker, args.base_url, args.streams, args.rounds, args.stream_batch)
        print(json.dumps(result))
        return

    from pydantic import ValidationError

    from bench.procs import start_fake
    from llm import LLMSettings

    given: dict[str, Any] = {} if args.stream_batch is None else {"stream_batch": args.stream_batch}
    try:  # the value the ours worker will use: the option, else the environment or default
        stream_batch = LLMSettings(**given).stream_batch
    except ValidationError as exc:
        parser.error(f"--stream-batch: {exc.errors()[0]['msg']}")

    raise_fd_limit()
    log_dir = Path(tempfile.mkdtemp(prefix="fastnpc-client-bench-"))
    fake = start_fake(
        log_dir, ttft=args.ttft, tokens=args.tokens, tps=args.tps, chunk_chars=args.chunk_chars
    )
    print(
        f"# fake upstream {fake.url}: {args.streams} streams x {args.tokens} chunks of "
        f"{args.chunk_chars} chars at {args.tps}/s, ttft {args.ttft}s; ours: stream_batch "
        f"{stream_batch}s",
        flush=True,
    )
    lines: list[dict[str, Any]] = []
    try:
        for attempt in range(args.repeat):
            for kind in KINDS:
                fake_cpu0 = fake.cpu_seconds()
                line = measure(kind, fake.url, args.streams, args.rounds, stream_batch)
                line.update(repeat=attempt, fake_cpu_s=round(fake.cpu_seconds() - fake_cpu0, 3))
                lines.append(line)
                print(json.dumps(line), flush=True)
    finally:
        fake.stop()
    per_delta = {
        kind: statistics.median(
            line["cpu_us_per_delta"]
            for line in lines
            if line["kind"] == kind and line["cpu_us_per_delta"]
        )
        for kind in KINDS
    }
    ratio = per_delta["ours"] / per_delta["sdk"]
    summary = {
        "summary": "client_bench",
        "ours_cpu_us_per_delta_median": per_delta["ours"],
        "sdk_cpu_us_per_delta_median": per_delta["sdk"],
        "ours_over_sdk": round(ratio, 3),
        "target": "<= 0.25",
        "meets_target": ratio <= 0.25,
    }
    print(json.dumps(summary))
    print()
    print("| consumer | CPU µs/delta (median) |")
    print("|---|---:|")
    print(f"| ours (llm.OpenRouterClient.stream, trio) | {per_delta['ours']:.1f} |")
    print(f"| openai AsyncOpenAI (asyncio) | {per_delta['sdk']:.1f} |")
    print(f"| ratio ours/sdk | {ratio:.3f} (target <= 0.25) |")
    if args.json_out:
        args.json_out.write_text("".join(json.dumps(x) + "\n" for x in [*lines, summary]))


if __name__ == "__main__":
    main()
