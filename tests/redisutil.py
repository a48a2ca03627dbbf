"""The machine's Redis for tests (FASTNPC_TEST_REDIS_URL, default 127.0.0.1:6379): each test
gets its own key prefix, and its keys are deleted at the end."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from app.services.redis_link import delete_keys, make_client

REDIS_URL = os.environ.get("FASTNPC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def delete_prefix(url: str, prefix: str) -> None:
    async with make_client(url) as client:
        await delete_keys(client, prefix)


@asynccontextmanager
async def redis_prefix(url: str = REDIS_URL) -> AsyncIterator[str]:
    """A fresh key prefix on the test Redis; everything under it is deleted afterwards."""
    prefix = f"test-{secrets.token_hex(6)}"
    try:
        yield prefix
    finally:
        await delete_prefix(url, prefix)


class RedisServer:
    """A `redis-server` of the test's own (for fault tests: stop it, start it again on the same
    port); nothing on disk, stopped at the end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        with socket.socket() as probe:  # a free port, reused by every start
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process: trio.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.process = await trio.lowlevel.open_process(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.directory)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with trio.fail_after(10):
            # another process starting up: no event to wait on, only its port to try
            while not await self._answers():  # noqa: ASYNC110
                await trio.sleep(0.05)

    async def _answers(self) -> bool:
        """Whether the server answers PING (a raw RESP exchange: no client pool to tidy)."""
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", self.port)
        except OSError:
            return False
        async with stream:
            await stream.send_all(b"PING\r\n")
            return await stream.receive_some(64) == b"+PONG\r\n"

    async def stop(self) -> None:
        """Kill it (as a crash would)."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            with trio.CancelScope(shield=True), trio.move_on_after(10):
                await self.process.wait()
        self.process = None


@asynccontextmanager
async def own_redis(directory: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(directory)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def wait_until(condition: Callable[[], Awaitable[bool]], *, within: float = 10.0) -> None:
    """Wait (polling every 10 ms) until ``condition()`` holds; fail after ``within`` s."""
    with trio.fail_after(within):
        while not await condition():  # noqa: ASYNC110 (state in Redis or other tasks)
            await trio.sleep(0.01)
