"""The process's link to the shared Redis (``FASTNPC_REDIS_URL``), and whether it answers.

Redis is optional: without a URL every piece that would use it works per process. With one,
several server processes (and machines) that share the database and the Redis server work as
one service: generations' live events are published to it, and the LLM limits hold across
processes. The link is opened once by the composition root; `watch` pings it and records when
it is lost and back, so users of the link (the event publisher, the shared limiter) can fall
back to per-process behaviour while it is down and `/readyz` can say so.

Keys are named ``<prefix>:<part>:…`` (`key`); tests give each run its own prefix.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import coredis
import trio
from coredis.exceptions import BusyLoadingError, RedisError
from coredis.exceptions import ConnectionError as RedisConnectionError

log = logging.getLogger(__name__)

# What a lost or failing Redis raises through coredis (connection refused, reset, timeouts).
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
# Of those, the ones that say the link is lost (or Redis not ready): the same command may work
# once it is back. Any other `RedisError` is the command's own failure (a script error, a
# wrong type) and would fail the same way again.
LINK_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    BusyLoadingError,
    OSError,
    TimeoutError,
)


class RedisLink:
    """A connected coredis client plus the link's state (``up``), kept fresh by `watch`."""

    def __init__(self, client: coredis.Redis[bytes], *, prefix: str, url: str) -> None:
        self.client = client
        self.prefix = prefix
        self.url = url
        self.up = True
        self._changed = trio.Event()

    def key(self, *parts: object) -> str:
        return ":".join([self.prefix, *(str(p) for p in parts)])

    def lost(self, exc: BaseException | None = None) -> None:
        """A command failed for want of Redis: mark the link down until a ping answers."""
        if self.up:
            log.warning("Redis at %s lost: %s", self.url, exc or "no answer")
            self.up = False
            self._notify()

    def _back(self) -> None:
        if not self.up:
            log.warning("Redis at %s is back", self.url)
            self.up = True
            self._notify()

    def _notify(self) -> None:
        changed, self._changed = self._changed, trio.Event()
        changed.set()

    async def wait_changed(self) -> None:
        """Return the next time the link goes down or comes back."""
        await self._changed.wait()

    async def ping(self, within: float = 2.0) -> bool:
        with trio.move_on_after(within):
            try:
                await self.client.ping()
            except REDIS_ERRORS as exc:
                self.lost(exc)
                return False
            self._back()
            return True
        self.lost()
        return False

    async def watch(
        self,
        interval: float = 1.0,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Ping every `interval` seconds (more often while down), recording lost and back."""
        task_status.started()
        while True:
            await trio.sleep(interval if self.up else min(interval, 0.5))
            await self.ping()

    def health(self) -> str:
        return "ok" if self.up else "unavailable"


async def delete_keys(client: coredis.Redis[bytes], prefix: str) -> int:
    """Delete every key under ``<prefix>:`` (tests and benchmarks clean up after themselves)."""
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
    return await client.delete(keys) if keys else 0


def make_client(url: str) -> coredis.Redis[bytes]:
    """A coredis client for `url` (bytes replies; short connect timeout so a lost server is
    noticed in about a second)."""
    return coredis.Redis.from_url(url, decode_responses=False, connect_timeout=1.0)


@asynccontextmanager
async def open_redis(
    url: str | None, *, prefix: str = "fastnpc"
) -> AsyncIterator[RedisLink | None]:
    """The link for `url`, connected and answering (None without a URL). A server that does
    not answer at start is a `StartupError`: a configured Redis is required to start."""
    if not url:
        yield None
        return
    from app.startup import StartupError, mask_url

    client = make_client(url)
    hint = "start Redis, or unset FASTNPC_REDIS_URL to run a single process without it"
    async with AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(client)
        except REDIS_ERRORS as exc:
            raise StartupError(
                f"Redis at {mask_url(url)} does not answer", f"{type(exc).__name__}: {exc}", hint
            ) from exc
        cause = "no answer within 3 s"
        with trio.move_on_after(3.0):
            try:
                await client.ping()
                cause = ""
            except REDIS_ERRORS as exc:
                cause = f"{type(exc).__name__}: {exc}"
        if cause:
            raise StartupError(f"Redis at {mask_url(url)} does not answer", cause, hint)
        yield RedisLink(client, prefix=prefix, url=mask_url(url))
