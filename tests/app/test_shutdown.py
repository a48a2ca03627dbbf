"""SIGTERM with open streams: each ends with one terminal event, partial replies are saved,
and the process exits 0 (one process with its own fake LLM, and two workers sharing a socket
behind a parent that forwards the signal)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import trio

from tests.app.harness import SSE

ROOT = Path(__file__).resolve().parents[2]
READY_PREFIXES = ("FastNPC serving on ",)


async def _read_line_with(stdout: trio.abc.ReceiveStream, prefixes: Sequence[str]) -> str:
    """The first line of output starting with one of `prefixes`, whole."""
    buffer = b""
    while True:
        chunk = await stdout.receive_some()
        assert chunk, f"process exited early: {buffer!r}"
        buffer += chunk
        for line in buffer.decode(errors="replace").splitlines():
            for prefix in prefixes:
                if line.startswith(prefix):
                    return line


async def _read_lines_until(stdout: trio.abc.ReceiveStream, prefix: str, count: int) -> list[str]:
    """Output lines up to the `count`-th one starting with `prefix`."""
    buffer = b""
    while True:
        chunk = await stdout.receive_some()
        assert chunk, f"process exited early: {buffer!r}"
        buffer += chunk
        lines = buffer.decode(errors="replace").splitlines()
        if sum(line.startswith(prefix) for line in lines) >= count:
            return lines


def _base_url(ready: str) -> str:
    """The URL in "FastNPC serving on URL, ..." or "FastNPC serving on URL with N workers"."""
    for prefix in READY_PREFIXES:
        ready = ready.removeprefix(prefix)
    return ready.split(",")[0].split(" with ")[0].strip()


async def _stream_then_sigterm(
    process: trio.Process, base_url: str, streams: int
) -> list[list[tuple[str, dict[str, Any]]]]:
    """Open `streams` chats, wait for a delta on each, send SIGTERM, collect every event."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        r = await client.post(
            "/api/auth/register", json={"username": "sig", "password": "pw123456"}
        )
        headers = {"Authorization": f"Bearer {r.json()['token']}"}
        ids = []
        for i in range(streams):
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
    return endings


def _check(endings: list[list[tuple[str, dict[str, Any]]]], streams: int, db: Path) -> None:
    assert len(endings) == streams
    for events in endings:
        names = [n for n, _ in events]
        assert names.count("error") + names.count("done") == 1
        assert names[-1] == "error" and events[-1][1]["code"] == "shutting_down"
        assert "delta" in names and names[-2] == "reply"
        assert events[-2][1]["status"] == "interrupted"
    # the partial replies were saved as interrupted
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT status, length(content) FROM messages WHERE role = 'assistant'"
        ).fetchall()
    assert len(rows) == streams
    assert all(status == "interrupted" and length > 0 for status, length in rows)


async def _stop(process: trio.Process) -> None:
    if process.returncode is None:
        process.kill()
        await process.wait()


def _env(db: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "FASTNPC_DATABASE_URL": f"sqlite:///{db}", "PYTHONUNBUFFERED": "1"}
    env.pop("OPENROUTER_API_KEY", None)
    env.update(extra)
    return env


async def test_sigterm_ends_streams_and_saves_partials(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "app.cli", "serve", "--fake-llm", "--port", "0"],
        cwd=ROOT,
        env=_env(db),
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        with trio.fail_after(60):
            base_url = _base_url(await _read_line_with(process.stdout, READY_PREFIXES))
        endings = await _stream_then_sigterm(process, base_url, 3)
        with trio.fail_after(30):
            assert await process.wait() == 0
    finally:
        await _stop(process)
    _check(endings, 3, db)


async def test_sigterm_to_a_two_worker_server(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    fake = await trio.lowlevel.open_process(
        [
            sys.executable,
            "-c",
            "from llm.fake import run_fake_upstream_cli; run_fake_upstream_cli()",
            "--port",
            "0",
        ],
        cwd=ROOT,
        env=_env(db),
        stdout=subprocess.PIPE,
    )
    server: trio.Process | None = None
    try:
        assert fake.stdout is not None
        with trio.fail_after(60):
            fake_url = (await _read_line_with(fake.stdout, ("http://",))).strip()
        server = await trio.lowlevel.open_process(
            [sys.executable, "-m", "app.cli", "serve", "--workers", "2", "--port", "0"],
            cwd=ROOT,
            env=_env(db, OPENROUTER_API_KEY="k", FASTNPC_OPENROUTER_BASE_URL=fake_url),
            stdout=subprocess.PIPE,
        )
        assert server.stdout is not None
        with trio.fail_after(60):
            # the parent prints one line once every worker serves
            lines = await _read_lines_until(server.stdout, "FastNPC serving on ", 1)
        base_url = _base_url(next(line for line in lines if line.startswith(READY_PREFIXES)))
        endings = await _stream_then_sigterm(server, base_url, 4)
        with trio.fail_after(30):
            assert await server.wait() == 0
    finally:
        if server is not None:
            await _stop(server)
        await _stop(fake)
    _check(endings, 4, db)
