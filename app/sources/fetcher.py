"""`SourceFetcher`: GET a page of a configured source, and nothing else.

Its own ``httpx.AsyncClient`` (not the LLM's), a descriptive User-Agent, redirects followed only
within the origin (scheme, host, port) of the URL asked for, the whole fetch (waiting for a slot
of the concurrency limit included) bounded by ``FASTNPC_SOURCE_TIMEOUT``, and the body read up to
``FASTNPC_SOURCE_MAX_BYTES`` (decoded bytes, so a compressed bomb is cut too).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import trio

from app.sources.errors import SourceNotFound, SourceUnavailable
from app.sources.settings import SourceSettings

MAX_REDIRECTS = 5

Origin = tuple[str, str, int | None]


def origin(url: httpx.URL | str) -> Origin:
    """(scheme, host, port) of ``url``, the port made explicit for http and https."""
    url = httpx.URL(url)
    default = {"http": 80, "https": 443}.get(url.scheme)
    return (url.scheme, url.host, url.port or default)


@dataclass(frozen=True)
class Fetched:
    """A page as the source answered it (after same-origin redirects)."""

    url: str
    status: int
    body: bytes


@asynccontextmanager
async def open_source_http(settings: SourceSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The fetcher's own HTTP client: never follows redirects by itself (the fetcher checks
    each one), sized to the concurrency limit."""
    limits = httpx.Limits(
        max_connections=settings.max_concurrency,
        max_keepalive_connections=settings.max_concurrency,
    )
    async with httpx.AsyncClient(
        headers={"User-Agent": settings.user_agent},
        follow_redirects=False,
        timeout=httpx.Timeout(settings.timeout),
        limits=limits,
    ) as http:
        yield http


class SourceFetcher:
    """Bounded GETs of source pages; raises `SourceUnavailable` / `SourceNotFound`."""

    def __init__(self, http: httpx.AsyncClient, settings: SourceSettings) -> None:
        self._http = http
        self._settings = settings
        self.limiter = trio.CapacityLimiter(settings.max_concurrency)

    async def get(self, url: str, params: Mapping[str, str] | None = None) -> Fetched:
        """GET ``url`` with ``params``. 404/410 → `SourceNotFound`; another non-2xx answer, a
        network error, a timeout, a body over the size cap or a redirect to another origin →
        `SourceUnavailable`."""
        start = httpx.URL(url)
        where = f"{start.scheme}://{start.netloc.decode('ascii')}"
        try:
            with trio.fail_after(self._settings.timeout):
                async with self.limiter:
                    fetched = await self._follow(start, params)
        except trio.TooSlowError:
            raise SourceUnavailable(
                f"{where} did not answer within {self._settings.timeout:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise SourceUnavailable(f"{where} failed: {type(exc).__name__}") from None
        if fetched.status in (404, 410):
            raise SourceNotFound(f"{where} has no such page")
        if not 200 <= fetched.status < 300:
            raise SourceUnavailable(f"{where} answered HTTP {fetched.status}")
        return fetched

    async def _follow(self, url: httpx.URL, params: Mapping[str, str] | None) -> Fetched:
        allowed = origin(url)
        request = self._http.build_request("GET", url, params=params)
        for _ in range(MAX_REDIRECTS + 1):
            response = await self._http.send(request, stream=True)
            try:
                if response.is_redirect:
                    target = request.url.join(response.headers["location"])
                    if origin(target) != allowed:
                        raise SourceUnavailable("the source redirected to another origin")
                    request = self._http.build_request("GET", target)
                    continue
                body = await self._read(response)
                return Fetched(str(request.url), response.status_code, body)
            finally:
                await response.aclose()
        raise SourceUnavailable("the source redirected too many times")

    async def _read(self, response: httpx.Response) -> bytes:
        cap = self._settings.max_bytes
        too_large = SourceUnavailable(f"the source's page is larger than {cap} bytes")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)
