"""The shared httpx client for LLM calls."""

from __future__ import annotations

import httpcore
import httpx

from llm.settings import LLMSettings

# The admin API may resize the limiter up to this many slots without a restart.
MAX_RESIZABLE_CONCURRENCY = 1000


class _LinearConnectionPool(httpcore.AsyncConnectionPool):
    """httpcore's pool with its bookkeeping made linear in the number of connections.

    httpcore 1.0's ``_assign_requests_to_connections`` runs on every request start and
    end; it evaluates a list over all connections for every idle one (quadratic per
    call) and polls every idle socket for expiry, which dominates CPU with hundreds of
    pooled connections. Here an idle connection's expiry is checked only when it is
    about to be reused (an expired one is closed and the next candidate tried); the
    keep-alive bound is httpcore's (bug-compatible: it compares the *total* connection
    count with ``max_keepalive_connections``). When a request ends and none is queued,
    nothing is scanned at all; closed connections are dropped by the next scan.
    """

    def _assign_requests_to_connections(self) -> list[httpcore.AsyncConnectionInterface]:
        closing: list[httpcore.AsyncConnectionInterface] = []
        connections = self._connections
        if len(connections) > self._max_keepalive_connections:
            for connection in list(connections):
                if connection.is_closed():
                    connections.remove(connection)
                elif connection.is_idle() and len(connections) > self._max_keepalive_connections:
                    connections.remove(connection)
                    closing.append(connection)

        requests = self._requests
        queued = [r for r in requests if r.connection is None]
        if not queued:  # a request ended: nothing to assign (closed ones go at the next scan)
            return closing
        # HTTP/1.1: a connection serving a request is not available; only the others are
        # asked (newest first), instead of three method calls on every connection.
        in_use = {id(r.connection) for r in requests if r.connection is not None}
        candidates = [c for c in connections if id(c) not in in_use]
        for pool_request in queued:
            origin = pool_request.request.url.origin
            chosen = None
            while candidates:
                connection = candidates.pop()
                if connection.is_closed():
                    connections.remove(connection)
                    continue
                if not (connection.can_handle_request(origin) and connection.is_available()):
                    continue
                if connection.is_idle() and connection.has_expired():
                    connections.remove(connection)
                    closing.append(connection)
                    continue
                chosen = connection
                break
            if chosen is None:
                if len(connections) >= self._max_connections:
                    idle = next((c for c in connections if c.is_idle()), None)
                    if idle is None:
                        continue  # stays queued until a connection frees up
                    connections.remove(idle)
                    closing.append(idle)
                chosen = self.create_connection(origin)
                connections.append(chosen)
            pool_request.assign_to_connection(chosen)
        return closing


def make_http_client(settings: LLMSettings) -> httpx.AsyncClient:
    """An HTTP/1.1 ``httpx.AsyncClient`` sized for the LLM limiter.

    No httpx timeouts: a read timeout restarts on every chunk (keep-alives defeat it),
    so the client's own cancel scopes bound every call. The pool admits at least as
    many connections as the limiter can ever grant, so callers never queue in httpx.
    """
    connections = max(settings.max_concurrency, MAX_RESIZABLE_CONCURRENCY)
    limits = httpx.Limits(
        max_connections=connections,
        max_keepalive_connections=settings.max_concurrency,
        keepalive_expiry=30.0,
    )
    transport = httpx.AsyncHTTPTransport(http1=True, http2=False, limits=limits)
    pool = getattr(transport, "_pool", None)
    if type(pool) is httpcore.AsyncConnectionPool:
        pool.__class__ = _LinearConnectionPool
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(None),
        limits=limits,
        follow_redirects=False,
    )
