"""Redis for tests: links to the machine's Redis under a prefix of their own (keys deleted
after), and a private `redis-server` a fault test may stop and start again."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import trio

from app.services.redis_link import RedisLink, make_client, open_redis

SHARED_REDIS_URL = "redis://127.0.0.1:6379/0"


def unique_prefix(name: str = "test") -> str:
    return f"{name}-{uuid.uuid4().hex[:12]}"


async def delete_prefixed(url: str, prefix: str) -> None:
    """Delete every key under ``prefix:`` (what a test left behind)."""
    client = make_client(url)
    async with client:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(keys)


@asynccontextmanager
async def shared_redis(prefix: str) -> AsyncIterator[RedisLink]:
    """A link to the machine's Redis under ``prefix``; its keys are deleted afterwards."""
    try:
        async with open_redis(SHARED_REDIS_URL, prefix=prefix) as link:
            assert link is not None
            yield link
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            await delete_prefixed(SHARED_REDIS_URL, prefix)


class PrivateRedis:
    """A `redis-server` of the test's own on a unix socket in ``directory`` (no persistence),
    which the test may `stop` (Redis lost) and `start` again (empty). The blocking calls are
    for ``trio.to_thread.run_sync`` in async tests."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("no redis-server: the Redis server is not installed")
        self._binary = binary
        self.directory = directory
        self.socket = directory / "redis.sock"
        self.url = f"unix://{self.socket}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait (up to 10 s) until it answers PING."""
        assert self._process is None
        self._process = subprocess.Popen(
            [
                self._binary,
                *("--port", "0", "--unixsocket", str(self.socket)),
                *("--dir", str(self.directory), "--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self._answers():
            if time.monotonic() > deadline or self._process.poll() is not None:
                self.stop()
                raise RuntimeError("the private redis-server did not start")
            time.sleep(0.01)

    def _answers(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(1)
                sock.connect(str(self.socket))
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Kill the server (as a crash would) and wait for it."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None


@contextmanager
def private_redis(directory: Path) -> Iterator[PrivateRedis]:
    """A started private server; stopped afterwards."""
    server = PrivateRedis(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def wait_until(condition: Callable[[], Awaitable[bool]], *, within: float = 10.0) -> None:
    """Wait (polling every 10 ms) until ``condition()`` holds; fail after ``within`` s."""
    with trio.fail_after(within):
        while not await condition():  # noqa: ASYNC110 (state in Redis or other tasks)
            await trio.sleep(0.01)
