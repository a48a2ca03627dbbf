"""SIGTERM with open streams: each ends with one terminal event, partial replies are saved,
and the process exits 0."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import trio

from tests.app.harness import SSE

ROOT = Path(__file__).resolve().parents[2]


async def _read_base_url(stdout: trio.abc.ReceiveStream) -> str:
    buffer = b""
    while True:
        chunk = await stdout.receive_some()
        assert chunk, f"server exited early: {buffer!r}"
        buffer += chunk
        for line in buffer.decode(errors="replace").splitlines():
            if line.startswith("FastNPC serving on "):
                return line.removeprefix("FastNPC serving on ").split(",")[0].strip()


async def test_sigterm_ends_streams_and_saves_partials(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "FASTNPC_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("OPENROUTER_API_KEY", None)
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "app.cli", "serve", "--fake-llm", "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        with trio.fail_after(60):
            base_url = await _read_base_url(process.stdout)
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            r = await client.post(
                "/api/auth/register", json={"username": "sig", "password": "password123"}
            )
            headers = {"Authorization": f"Bearer {r.json()['token']}"}
            ids = []
            for i in range(3):
                r = await client.post("/api/characters", json={"name": f"C{i}"}, headers=headers)
                ids.append(r.json()["id"])
            endings: list[list[tuple[str, dict[str, Any]]]] = []
            got_delta = trio.Semaphore(0)

            async def stream(cid: str) -> None:
                body = {"content": "go on [[fake:ttft=0]] [[fake:tokens=500]] [[fake:tps=20]]"}
                async with client.stream(
                    "POST",
                    f"/api/characters/{cid}/chat",
                    json=body,
                    headers={**headers, "Accept": "text/event-stream"},
                ) as response:
                    sse = SSE(response)
                    events = []
                    signalled = False
                    async for _, name, data in sse:
                        events.append((name, data))
                        if name == "delta" and not signalled:
                            signalled = True
                            got_delta.release()
                    await sse.aclose()
                    endings.append(events)

            async with trio.open_nursery() as nursery:
                for cid in ids:
                    nursery.start_soon(stream, cid)
                for _ in ids:
                    await got_delta.acquire()
                process.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            code = await process.wait()
        assert code == 0
        assert len(endings) == 3
        for events in endings:
            names = [n for n, _ in events]
            assert names.count("error") + names.count("done") == 1
            assert names[-1] == "error" and events[-1][1]["code"] == "shutting_down"
            assert "delta" in names and names[-2] == "reply"
            assert events[-2][1]["status"] == "interrupted"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    # the partial replies were saved as interrupted
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        rows = conn.execute(
            "SELECT status, length(content) FROM messages WHERE role = 'assistant'"
        ).fetchall()
    assert len(rows) == 3
    assert all(status == "interrupted" and length > 0 for status, length in rows)
