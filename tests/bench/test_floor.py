"""`bench.floor` end to end with a handful of streams, so the benchmark cannot rot."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import httpx
import trio

from bench.floor import parse_args, run_floor, summary_table
from bench.floor_apps import VARIANTS
from bench.procs import start_floor, wait_ready

STREAMS = 5


async def test_every_variant_answers_every_stream(tmp_path: Path) -> None:
    out = tmp_path / "floor.jsonl"
    args = parse_args(["--streams", str(STREAMS), "--warmup", "1", "--json-out", str(out)])

    results = await run_floor(args)

    assert [r["variant"] for r in results] == list(VARIANTS)
    for result in results:
        assert (result["ok"], result["errors"], result["deltas"]) == (STREAMS, 0, STREAMS)
        assert result["ttfd_p99_s"] is not None
        assert result["p99_rank"] == STREAMS
    assert [json.loads(line)["variant"] for line in out.read_text().splitlines()] == list(VARIANTS)
    rows = summary_table(results).splitlines()[2:]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == list(VARIANTS)


async def test_only_the_schema_variant_validates_the_body(tmp_path: Path) -> None:
    """Variant `schema` runs the chat route's model (`app.schemas.ChatIn`: no unknown fields)."""
    body = {"content": "Hello", "unexpected": 1}
    statuses = {}
    async with httpx.AsyncClient(timeout=10.0) as client:
        for variant in ("quart", "schema"):
            server = await trio.to_thread.run_sync(
                partial(start_floor, tmp_path, variant, delay=0.0)
            )
            try:
                with trio.fail_after(30):
                    await wait_ready(server, client)
                response = await client.post(f"{server.url}/api/characters/1/chat", json=body)
                statuses[variant] = response.status_code
            finally:
                await trio.to_thread.run_sync(server.stop)
    assert statuses == {"quart": 200, "schema": 400}
