"""`SourceClient`: the one entry point the services use (search, fetch), per provider."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.sources.baike import Baike
from app.sources.fetcher import SourceFetcher, open_source_http
from app.sources.models import MAX_SOURCE_CHARS, Provider, SearchItem, SourcePage, SourceQuery
from app.sources.settings import SourceSettings
from app.sources.wikipedia import Wikipedia


class SourceClient:
    """Search for pages and fetch one page's main text from Wikipedia or Baidu Baike."""

    def __init__(self, fetcher: SourceFetcher, settings: SourceSettings) -> None:
        self.fetcher = fetcher
        self._wikipedia = Wikipedia(fetcher, settings.wikipedia_url)
        self._baike = Baike(fetcher, settings.baike_url)

    async def search(self, provider: Provider, query: str, lang: str) -> list[SearchItem]:
        """Pages matching ``query`` (several people share a name), best first."""
        if provider == "wikipedia":
            return await self._wikipedia.search(query, lang)
        return await self._baike.search(query)

    async def fetch(self, query: SourceQuery) -> SourcePage:
        """The page ``query`` names, its text cut to MAX_SOURCE_CHARS. Raises
        `SourceNotFound`, `SourceUnavailable` or `InvalidSourceURL`."""
        if query.provider == "wikipedia":
            title = query.title
            if query.url is not None:
                title = self._wikipedia.title_of(query.url, query.lang)
            page = await self._wikipedia.fetch(title or "", query.lang)
        else:
            page = await self._baike.fetch(title=query.title, url=query.url)
        return SourcePage(page.provider, page.title, page.url, page.text[:MAX_SOURCE_CHARS])


@asynccontextmanager
async def open_sources(settings: SourceSettings) -> AsyncIterator[SourceClient]:
    """A `SourceClient` with its own HTTP client, closed on exit (composition root)."""
    async with open_source_http(settings) as http:
        yield SourceClient(SourceFetcher(http, settings), settings)
