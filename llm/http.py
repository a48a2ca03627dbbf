"""The shared httpx client for LLM calls, over this package's own HTTP/1.1 transport
(``llm.h1``: bulk de-chunked reads, public APIs only)."""

from __future__ import annotations

import httpx

from llm.h1 import H1Transport
from llm.settings import LLMSettings

# The admin API may resize the limiter up to this many slots without a restart.
MAX_RESIZABLE_CONCURRENCY = 1000


def make_http_client(settings: LLMSettings) -> httpx.AsyncClient:
    """An HTTP/1.1 ``httpx.AsyncClient`` sized for the LLM limiter.

    No httpx timeouts: a read timeout restarts on every chunk (keep-alives defeat it),
    so the client's own cancel scopes bound every call. The transport admits at least as
    many connections as the limiter can ever grant, so callers never queue in httpx.
    """
    transport = H1Transport(
        max_connections=max(settings.max_concurrency, MAX_RESIZABLE_CONCURRENCY),
        max_keepalive_connections=settings.max_concurrency,
        keepalive_expiry=30.0,
    )
    return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(None))
