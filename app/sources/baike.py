"""Baidu Baike: an entry page (``/item/<title>``) and its list of same-name entries."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import trio

from app.sources.errors import InvalidSourceURL, SourceNotFound
from app.sources.fetcher import Fetched, SourceFetcher, origin
from app.sources.models import SearchItem, SourcePage
from app.sources.text import BaikePage, baike_page

# where Baike sends a request for an entry it does not have
_ERROR_PATHS = ("/error.html", "/error")


class Baike:
    """Baidu Baike at ``base_url`` (e.g. ``https://baike.baidu.com``)."""

    provider = "baike"

    def __init__(self, fetcher: SourceFetcher, base_url: str) -> None:
        self._fetcher = fetcher
        self._base = base_url.rstrip("/")

    def item_url(self, title: str) -> str:
        return f"{self._base}/item/{quote(title, safe='')}"

    def checked_url(self, url: str) -> str:
        """``url`` if it is an entry page of the configured Baike (400 otherwise)."""
        parsed = httpx.URL(url)
        base = httpx.URL(self._base)
        if parsed.scheme not in ("http", "https") or origin(parsed) != origin(base):
            raise InvalidSourceURL("the url is not a page of the configured Baidu Baike")
        if not parsed.path.startswith(f"{base.path.rstrip('/')}/item/"):
            raise InvalidSourceURL("the url names no Baidu Baike entry")
        return url

    async def _page(self, url: str) -> tuple[Fetched, BaikePage]:
        fetched = await self._fetcher.get(url)
        if httpx.URL(fetched.url).path.endswith(_ERROR_PATHS):
            raise SourceNotFound("Baidu Baike has no such entry")
        page = await trio.to_thread.run_sync(baike_page, fetched.body, fetched.url)
        if not page.text:
            raise SourceNotFound("Baidu Baike has no such entry")
        return fetched, page

    async def search(self, query: str) -> list[SearchItem]:
        """The entry ``query`` and its same-name entries (each sense's description)."""
        try:
            fetched, page = await self._page(self.item_url(query))
        except SourceNotFound:
            return []
        title = page.title or query
        own = next((s.description for s in page.senses if s.url is None), "")
        items = [SearchItem(title, own or _first_sentence(page.text), fetched.url)]
        items += [
            SearchItem(title, sense.description, sense.url)
            for sense in page.senses
            if sense.url is not None and origin(sense.url) == origin(fetched.url)
        ]
        return items

    async def fetch(self, *, title: str | None, url: str | None) -> SourcePage:
        """The entry named by ``url`` (checked) or ``title``."""
        target = self.checked_url(url) if url is not None else self.item_url(title or "")
        fetched, page = await self._page(target)
        return SourcePage("baike", page.title or title or "", fetched.url, page.text)


def _first_sentence(text: str) -> str:
    line = text.split("\n", 1)[0]
    end = line.find("。")
    return line[: end + 1] if end >= 0 else line[:100]
