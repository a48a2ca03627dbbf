"""The machine's Redis for tests (FASTNPC_TEST_REDIS_URL, default 127.0.0.1:6379): each test
gets its own key prefix, and its keys are deleted at the end."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import coredis

REDIS_URL = os.environ.get("FASTNPC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def delete_prefix(url: str, prefix: str) -> None:
    async with coredis.Redis.from_url(url) as client:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(keys)


@asynccontextmanager
async def redis_prefix(url: str = REDIS_URL) -> AsyncIterator[str]:
    """A fresh key prefix on the test Redis; everything under it is deleted afterwards."""
    prefix = f"test-{secrets.token_hex(6)}"
    try:
        yield prefix
    finally:
        await delete_prefix(url, prefix)
