"""Running the app on Hypercorn's trio worker, with a graceful SIGTERM that ends open streams.

`serve` is startable (`nursery.start(serve, ...)` reports the bound URLs). A shutdown first sets
the app's stop event, so every open stream ends with an `error` event `shutting_down` and partial
replies are saved, then lets Hypercorn drain and run the lifespan shutdown.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve
from quart_trio import QuartTrio

from app import hypercorn_patches
from app.connection_guard import ConnectionGuard
from app.settings import Settings

log = logging.getLogger(__name__)


def hypercorn_config(bind: str, *, graceful_timeout: float, header_timeout: float) -> Config:
    """Hypercorn's settings. Its keep-alive timer runs from a connection's start (and from the
    end of each response) until a request's headers are complete, and is not reset by bytes
    arriving, so `keep_alive_timeout` is the deadline for complete headers (slow-header
    clients are cut after `header_timeout`) as well as the idle keep-alive limit."""
    config = Config()
    config.bind = [bind]
    config.graceful_timeout = graceful_timeout
    config.keep_alive_timeout = header_timeout
    config.accesslog = None
    config.errorlog = "-"
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
    graceful_timeout: float = 10.0,
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
        bind, graceful_timeout=graceful_timeout, header_timeout=settings.header_timeout
    )
    hypercorn_patches.install()
    await hypercorn_serve(
        ConnectionGuard(app), config, shutdown_trigger=trigger, task_status=task_status
    )


def run_workers(argv: Sequence[str], host: str, port: int, workers: int) -> int:
    """Run `workers` server processes sharing one listening socket; forward SIGTERM/SIGINT."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    fd = sock.fileno()
    print(f"listening on http://{host}:{sock.getsockname()[1]} with {workers} workers", flush=True)
    children = [subprocess.Popen([*argv, "--fd", str(fd)], pass_fds=(fd,)) for _ in range(workers)]

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [child.wait() for child in children]
    sock.close()
    return max(codes, default=0)


def child_argv() -> list[str]:
    return [sys.executable, "-m", "app.cli", *sys.argv[1:]]
