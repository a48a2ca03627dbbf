"""Processes the benchmarks start: the fake upstream and the servers, plus psutil sampling.

Every process is started with ``subprocess.Popen`` (stdout/stderr to a log file in the run's
temporary directory), stopped by its own pid, and measured as a tree (the process and all its
children, so a multi-worker server counts every worker).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped]
import trio

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Managed:
    """A child process this run started, with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    url: str = ""
    _ps: psutil.Process | None = field(default=None, repr=False)
    _tree: list[psutil.Process] = field(default_factory=list, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def ps(self) -> psutil.Process:
        if self._ps is None:
            self._ps = psutil.Process(self.pid)
        return self._ps

    def refresh_tree(self) -> list[psutil.Process]:
        """Find this process's live descendants now (a scan of every process: not per sample)."""
        try:
            self._tree = [self.ps, *self.ps.children(recursive=True)]
        except psutil.NoSuchProcess:
            self._tree = []
        return self._tree

    def tree(self) -> list[psutil.Process]:
        """This process and its descendants as of the last `refresh_tree` (or now, if never)."""
        return self._tree or self.refresh_tree()

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the live process tree."""
        total = 0.0
        for proc in self.tree():
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def rss_bytes(self) -> int:
        """Resident set size of the live process tree."""
        total = 0
        for proc in self.tree():
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total

    def stop(self, grace: float = 10.0) -> None:
        """SIGINT, then SIGTERM, then SIGKILL — to this pid only."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if self.popen.poll() is not None:
                return
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                continue

    def tail(self, lines: int = 20) -> str:
        """The end of the log, for error messages."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def spawn(name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None) -> Managed:
    """Start ``argv`` with output to ``log_dir/name.log``."""
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            env={**os.environ, **(env or {})},
        )
    return Managed(name, popen, log)


def start_fake(
    log_dir: Path,
    *,
    ttft: float,
    tokens: int,
    tps: float,
    chunk_chars: int,
    name: str = "fake-upstream",
    timeout: float = 30.0,
) -> Managed:
    """Start the fake upstream in its own process; ``url`` is its base URL (``.../v1``)."""
    argv = [
        sys.executable,
        "-c",
        "from llm.fake import run_fake_upstream_cli; run_fake_upstream_cli()",
        "--port",
        "0",
        "--ttft",
        str(ttft),
        "--tokens",
        str(tokens),
        "--tps",
        str(tps),
        "--chunk-chars",
        str(chunk_chars),
    ]
    return wait_for_url(spawn(name, argv, log_dir), timeout)


def wait_for_url(proc: Managed, timeout: float) -> Managed:
    """Wait until ``proc`` prints its URL as the first line of its log, set ``proc.url`` to it
    and return ``proc``; stop it and raise if it does not within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        first = proc.log.read_text(errors="replace").split("\n", 1)
        if len(first) == 2 and first[0].startswith("http"):
            proc.url = first[0].strip()
            return proc
        if proc.popen.poll() is not None:
            break
        time.sleep(0.05)
    proc.stop()
    raise RuntimeError(f"{proc.name} did not print its URL:\n{proc.tail()}")


def fake_control_url(base_url: str) -> str:
    """``http://host:port/v1`` -> ``http://host:port`` (where ``/_fake/*`` lives)."""
    return base_url.removesuffix("/").removesuffix("/v1")


def server_env(fake_url: str, db_path: Path, max_concurrency: int) -> dict[str, str]:
    """The environment both servers read."""
    return {
        "FASTNPC_OPENROUTER_BASE_URL": fake_url,
        "OPENROUTER_API_KEY": "bench-key",
        "FASTNPC_DATABASE_URL": f"sqlite:///{db_path}",
        "FASTNPC_LLM_MAX_CONCURRENCY": str(max_concurrency),
        "FASTNPC_LLM_MAX_PER_USER": "8",
        # Memory compression is ours only (the reference has none): keep it out of the numbers.
        "FASTNPC_MEMORY_TRIGGER_MESSAGES": "1000000",
        "FASTNPC_LLM_QUEUE_TIMEOUT": "120",
    }


def start_fastnpc(
    log_dir: Path,
    fake_url: str,
    *,
    workers: int,
    max_concurrency: int,
    extra_env: dict[str, str] | None = None,
    name: str = "fastnpc",
) -> Managed:
    """Start ``fastnpc serve`` on a free port with a temporary SQLite database (``extra_env``
    may name another database, a Redis server, …)."""
    port = free_port()
    script = Path(sys.executable).parent / "fastnpc"
    launcher = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from app.cli import main; main()"]
    )
    argv = [*launcher, "serve", "--host", "127.0.0.1", "--port", str(port)]
    if workers > 1:
        argv.append(f"--workers={workers}")  # one token: app/cli.py drops only "--workers*"
    env = server_env(fake_url, log_dir / f"{name}.db", max_concurrency) | (extra_env or {})
    server = spawn(name, argv, log_dir, env)
    server.url = f"http://127.0.0.1:{port}"
    return server


def start_reference(log_dir: Path, fake_url: str, *, max_concurrency: int) -> Managed:
    """Start the reference server (uvicorn, one process) on a free port."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "bench.reference",
        "--port",
        str(port),
        "--db",
        str(log_dir / "reference.db"),
    ]
    env = server_env(fake_url, log_dir / "reference.db", max_concurrency)
    server = spawn("reference", argv, log_dir, env)
    server.url = f"http://127.0.0.1:{port}"
    return server


def start_floor(log_dir: Path, variant: str, *, delay: float, timeout: float = 30.0) -> Managed:
    """Start one of `bench.floor_apps`' servers (``variant``) on 127.0.0.1, port 0."""
    argv = [sys.executable, "-m", "bench.floor_apps", "--variant", variant, "--delay", str(delay)]
    return wait_for_url(spawn(f"floor-{variant}", argv, log_dir), timeout)


async def wait_ready(server: Managed, client: httpx.AsyncClient) -> None:
    """Poll ``GET /readyz`` until it answers 200; raise if the process dies first.

    Callers bound it with ``trio.fail_after``.
    """
    while server.popen.poll() is None:
        try:
            response = await client.get(f"{server.url}/readyz", timeout=2.0)
            if response.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await trio.sleep(0.1)
    raise RuntimeError(f"{server.name} exited before it was ready:\n{server.tail()}")


def fastnpc_available() -> bool:
    """Whether ``fastnpc serve`` can be started from this checkout."""
    return (REPO / "app" / "cli.py").exists() or shutil.which("fastnpc") is not None
