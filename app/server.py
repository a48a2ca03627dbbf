"""Running the app on Hypercorn's trio worker, with a graceful SIGTERM that ends open streams.

`serve` is startable (`nursery.start(serve, ...)` reports the bound URLs). A shutdown first sets
the app's stop event, so every open stream ends with an `error` event `shutting_down` and partial
replies are saved, then lets Hypercorn drain and run the lifespan shutdown.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve
from quart_trio import QuartTrio

from app import hypercorn_patches
from app.connection_guard import ConnectionGuard
from app.settings import Settings
from llm.fake import FakeBehaviour

log = logging.getLogger(__name__)

GRACEFUL_TIMEOUT = 10.0
"""Seconds Hypercorn gives open requests to finish once a shutdown begins."""


def hypercorn_config(
    bind: str, *, graceful_timeout: float, header_timeout: float, access_log: bool = False
) -> Config:
    """Hypercorn's settings. Its error log goes through the ``hypercorn.error`` logger (so each
    line is printed once, in the process's format); the access log to stdout if asked for.

    Its keep-alive timer runs from a connection's start (and from the end of each response)
    until a request's headers are complete, and is not reset by bytes arriving, so
    `keep_alive_timeout` is the deadline for complete headers (slow-header clients are cut after
    `header_timeout`) as well as the idle keep-alive limit."""
    config = Config()
    config.bind = [bind]
    config.graceful_timeout = graceful_timeout
    config.keep_alive_timeout = header_timeout
    config.accesslog = "-" if access_log else None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.backlog = 2048
    return config


async def wait_for_signal() -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            return


async def serve(
    app: QuartTrio,
    bind: str,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]] = wait_for_signal,
    graceful_timeout: float = GRACEFUL_TIMEOUT,
    access_log: bool = False,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app` until `shutdown_trigger` returns, then shut down gracefully."""
    stop: trio.Event = app.extensions["stop"]

    async def trigger() -> None:
        await shutdown_trigger()
        log.info("shutting down: ending open streams")
        stop.set()
        services = app.extensions.get("services")
        if services is not None:
            with trio.move_on_after(services.settings.shutdown_grace):
                await services.runs.wait_idle()

    settings: Settings = app.extensions["settings"]
    config = hypercorn_config(
        bind,
        graceful_timeout=graceful_timeout,
        header_timeout=settings.header_timeout,
        access_log=access_log,
    )
    hypercorn_patches.install()
    await hypercorn_serve(
        ConnectionGuard(app), config, shutdown_trigger=trigger, task_status=task_status
    )


def run_workers(
    argv: Sequence[str],
    sock: socket.socket,
    workers: int,
    *,
    env: Mapping[str, str] | None = None,
    on_ready: Callable[[], None] = lambda: None,
    after: Callable[[], None] = lambda: None,
) -> int:
    """Run `workers` server processes sharing the listening socket `sock`; forward SIGTERM and
    SIGINT to them. Each worker gets `--fd` (the socket) and `--ready-fd` (a pipe it writes one
    byte to once it serves); `on_ready` runs when all have, `after` once all have exited."""
    fd = sock.fileno()
    ready_read, ready_write = os.pipe()
    children = [
        subprocess.Popen(
            [*argv, "--fd", str(fd), "--ready-fd", str(ready_write)],
            pass_fds=(fd, ready_write),
            env=None if env is None else dict(env),
        )
        for _ in range(workers)
    ]
    os.close(ready_write)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    if _read_exactly(ready_read, workers):  # False: a worker exited before serving
        on_ready()
    os.close(ready_read)
    codes = [child.wait() for child in children]
    sock.close()
    after()
    return max(codes, default=0)


def _read_exactly(fd: int, count: int) -> bool:
    received = 0
    while received < count:
        chunk = os.read(fd, count - received)
        if not chunk:
            return False
        received += len(chunk)
    return True


def report_ready(fd: int) -> None:
    """Tell the parent (`run_workers`) that this worker serves."""
    os.write(fd, b"1")
    os.close(fd)


def child_argv() -> list[str]:
    return [sys.executable, "-m", "app.cli", *sys.argv[1:]]


def start_fake_upstream_process(behaviour: FakeBehaviour) -> tuple[subprocess.Popen[str], str]:
    """`fastnpc fake-llm` as a sibling process on a free port; returns it and its base URL."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.cli",
            "fake-llm",
            "--port",
            "0",
            "--ttft",
            str(behaviour.first_token_delay),
            "--tokens",
            str(behaviour.tokens),
            "--tps",
            str(behaviour.tokens_per_second),
            "--chunk-chars",
            str(behaviour.chunk_chars),
            "--keepalive",
            str(behaviour.keepalive_interval),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    base_url = process.stdout.readline().strip()
    if not base_url.startswith("http"):
        process.kill()
        process.wait()
        raise RuntimeError("the fake LLM process exited before it listened")
    return process, base_url


def stop_process(process: subprocess.Popen[str], *, timeout: float = 10.0) -> None:
    """SIGTERM `process` and wait for it (SIGKILL after `timeout` seconds)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
