"""The shared httpx client for LLM calls: a small ``httpx.AsyncBaseTransport`` over an httpcore
pool with linear bookkeeping, and where h11's receive buffer is found under a response.

Both rely on private shapes of httpcore (1.0) and h11 (0.16), pinned in pyproject.toml and
checked by ``tests/llm/test_http_internals.py``; each was kept because it measured far above
the 10 % bar (see README "Third-party overrides").
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sized
from typing import Any, NoReturn

import h11
import httpcore
import httpx

from llm.settings import LLMSettings

# The admin API may resize the limiter up to this many slots without a restart.
MAX_RESIZABLE_CONCURRENCY = 1000

# httpcore's exceptions as httpx's, most specific first (httpx maps them the same way).
_EXCEPTIONS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


class InternalsChanged(RuntimeError):
    """httpcore or h11 no longer has the private shape this module relies on."""


def _reraise(exc: Exception) -> NoReturn:
    """Raise ``exc`` as httpx's counterpart if it is one of httpcore's, else as it is."""
    for source, target in _EXCEPTIONS:
        if isinstance(exc, source):
            raise target(str(exc)) from exc
    raise exc


class LinearConnectionPool(httpcore.AsyncConnectionPool):
    """httpcore's pool with its bookkeeping made linear in the number of connections.

    httpcore 1.0's ``_assign_requests_to_connections`` (private; the one override) runs on
    every request start and end; it evaluates a list over all connections for every idle one
    (quadratic per call) and polls every idle socket for expiry, which dominated CPU with
    hundreds of pooled connections (10x the client's CPU per token at 500 streams). Here an
    idle connection's expiry is checked only when it is about to be reused (an expired one is
    closed and the next candidate tried); the keep-alive bound is httpcore's
    (bug-compatible: it compares the *total* connection count with
    ``max_keepalive_connections``). When a request ends and none is queued, nothing is
    scanned at all; closed connections are dropped by the next scan.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for attr in ("_connections", "_requests", "_max_connections", "_max_keepalive_connections"):
            if not hasattr(self, attr):
                raise InternalsChanged(f"httpcore.AsyncConnectionPool has no {attr!r}")

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


if not callable(getattr(httpcore.AsyncConnectionPool, "_assign_requests_to_connections", None)):
    raise InternalsChanged("httpcore.AsyncConnectionPool has no _assign_requests_to_connections")


class _ResponseStream(httpx.AsyncByteStream):
    """A response body from the pool, with httpcore's errors raised as httpx's. Iterated by
    a plain iterator, not an async generator (nothing for trio's finalizer to warn about)."""

    __slots__ = ("pool_stream", "_chunks")

    def __init__(self, pool_stream: Any) -> None:
        self.pool_stream = pool_stream
        self._chunks: AsyncIterator[bytes] | None = None

    def __aiter__(self) -> _ResponseStream:
        self._chunks = self.pool_stream.__aiter__()
        return self

    async def __anext__(self) -> bytes:
        chunks = self._chunks
        assert chunks is not None
        try:
            return await chunks.__anext__()
        except StopAsyncIteration:
            raise
        except Exception as exc:
            _reraise(exc)

    async def aclose(self) -> None:
        try:
            await self.pool_stream.aclose()
        except Exception as exc:
            _reraise(exc)


class LLMTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 to the LLM provider through ``LinearConnectionPool`` (no proxies)."""

    def __init__(
        self, *, max_connections: int, max_keepalive_connections: int, keepalive_expiry: float
    ) -> None:
        self.pool = LinearConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive_connections,
            keepalive_expiry=keepalive_expiry,
            http1=True,
            http2=False,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            response = await self.pool.handle_async_request(core_request)
        except Exception as exc:
            _reraise(exc)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.pool.aclose()


def make_http_client(settings: LLMSettings) -> httpx.AsyncClient:
    """An HTTP/1.1 ``httpx.AsyncClient`` sized for the LLM limiter.

    No httpx timeouts: a read timeout restarts on every chunk (keep-alives defeat it),
    so the client's own cancel scopes bound every call. The pool admits at least as
    many connections as the limiter can ever grant, so callers never queue in httpx.
    """
    transport = LLMTransport(
        max_connections=max(settings.max_concurrency, MAX_RESIZABLE_CONCURRENCY),
        max_keepalive_connections=settings.max_concurrency,
        keepalive_expiry=30.0,
    )
    return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(None))


def h11_receive_buffer(response: httpx.Response) -> Sized:
    """What h11 has received and not yet parsed under a response of ``make_http_client``
    (its length, read per chunk, costs no copy, unlike ``h11.Connection.trailing_data``).

    Reads private attributes of httpx (0.28), httpcore (1.0) and h11 (0.16), pinned in
    pyproject.toml; ``InternalsChanged`` if their shape is not the one known here."""
    node: Any = response.stream
    path = ("_stream", "pool_stream", "_stream", "_connection", "_h11_state")
    for attr in path:
        node = getattr(node, attr, None)
        if node is None:
            raise InternalsChanged(f"no {attr!r} on the way to h11 from {type(response.stream)}")
    received = getattr(node, "_receive_buffer", None) if isinstance(node, h11.Connection) else None
    if not isinstance(received, Sized):
        raise InternalsChanged("h11.Connection has no sized _receive_buffer")
    return received
