"""Running the `fastnpc` command as a subprocess, as a user would (for CLI and README tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[2]
READY = "FastNPC serving on "


def cli_env(db: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a CLI run: no provider key, SQLite at ``db``, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FASTNPC_", "OPENROUTER_"))}
    env["PYTHONUNBUFFERED"] = "1"
    if db is not None:
        env["FASTNPC_DATABASE_URL"] = f"sqlite:///{db}"
    env.update(extra)
    return env


def run_cli(
    args: Sequence[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``fastnpc ARGS`` to completion: its exit status, stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass
class Server:
    process: trio.Process
    base_url: str
    output: list[str] = field(default_factory=list)
    _buffer: bytes = b""

    async def read_until(self, text: str) -> list[str]:
        """Output lines (stdout and stderr merged) up to the first one containing ``text``."""
        assert self.process.stdout is not None
        while True:
            lines = self._buffer.decode(errors="replace").splitlines(keepends=True)
            complete = [line for line in lines if line.endswith("\n")]
            for i, line in enumerate(complete):
                if text in line:
                    self.output.extend(x.rstrip("\n") for x in complete[: i + 1])
                    self._buffer = "".join(lines[i + 1 :]).encode()
                    return self.output
            chunk = await self.process.stdout.receive_some()
            assert chunk, f"process exited: {self.output + lines!r}"
            self._buffer += chunk

    async def stop(self) -> int:
        """SIGTERM, read the rest of the output, return the exit status."""
        assert self.process.stdout is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        while chunk := await self.process.stdout.receive_some():
            self._buffer += chunk
        self.output.extend(self._buffer.decode(errors="replace").splitlines())
        self._buffer = b""
        return await self.process.wait()


@asynccontextmanager
async def serving(args: Sequence[str], env: dict[str, str]) -> AsyncIterator[Server]:
    """``fastnpc serve ARGS --port 0`` until it says where it serves; stopped on exit."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "app.cli", "serve", "--port", "0", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    server = Server(process, "")
    try:
        with trio.fail_after(120):
            lines = await server.read_until(READY)
        ready = next(line for line in lines if line.startswith(READY))
        server.base_url = ready.removeprefix(READY).split(",")[0].split(" with ")[0].strip()
        yield server
    finally:
        if process.returncode is None:
            with trio.move_on_after(30):
                await server.stop()
        if process.returncode is None:
            process.kill()
            await process.wait()
