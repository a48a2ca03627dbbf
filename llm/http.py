"""The shared httpx client for LLM calls."""

from __future__ import annotations

import httpx

from llm.settings import LLMSettings

# The admin API may resize the limiter up to this many slots without a restart.
MAX_RESIZABLE_CONCURRENCY = 1000


def make_http_client(settings: LLMSettings) -> httpx.AsyncClient:
    """An HTTP/1.1 ``httpx.AsyncClient`` sized for the LLM limiter.

    No httpx timeouts: a read timeout restarts on every chunk (keep-alives defeat it),
    so the client's own cancel scopes bound every call. The pool admits at least as
    many connections as the limiter can ever grant, so callers never queue in httpx.
    """
    connections = max(settings.max_concurrency, MAX_RESIZABLE_CONCURRENCY)
    return httpx.AsyncClient(
        http1=True,
        http2=False,
        timeout=httpx.Timeout(None),
        limits=httpx.Limits(
            max_connections=connections,
            max_keepalive_connections=settings.max_concurrency,
            keepalive_expiry=30.0,
        ),
        follow_redirects=False,
    )
