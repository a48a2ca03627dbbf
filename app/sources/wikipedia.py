"""Wikipedia through the MediaWiki Action API: search (for disambiguation) and page text
(``action=parse``, with ``variant=zh-cn`` for Chinese)."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote

import httpx
import orjson
import trio

from app.sources.errors import InvalidSourceURL, SourceNotFound, SourceUnavailable
from app.sources.fetcher import SourceFetcher, origin
from app.sources.models import SearchItem, SourcePage
from app.sources.text import wikipedia_text

SEARCH_LIMIT = 10
# the variant paths of Chinese Wikipedia's article URLs (`/zh-cn/苏轼`)
_ZH_VARIANTS = ("zh", "zh-cn", "zh-hans", "zh-hant", "zh-tw", "zh-hk", "zh-sg", "zh-mo", "zh-my")


def _common(lang: str) -> dict[str, str]:
    params = {"format": "json", "formatversion": "2", "utf8": "1"}
    if lang == "zh":
        params["variant"] = "zh-cn"
        params["uselang"] = "zh-cn"
    return params


def _decoded(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise SourceUnavailable("the MediaWiki API answered something other than JSON") from None
    if not isinstance(data, dict):
        raise SourceUnavailable("the MediaWiki API answered an unexpected shape")
    error = data.get("error")
    if isinstance(error, dict):
        if error.get("code") in ("missingtitle", "nosuchpageid", "invalidtitle"):
            raise SourceNotFound("Wikipedia has no such page")
        raise SourceUnavailable(f"the MediaWiki API failed: {error.get('code')}")
    return data


def _pages(data: dict[str, Any]) -> list[dict[str, Any]]:
    query = data.get("query")
    pages = query.get("pages") if isinstance(query, dict) else None
    return [p for p in pages if isinstance(p, dict)] if isinstance(pages, list) else []


class Wikipedia:
    """The MediaWiki API at ``endpoint`` (``{lang}`` replaced by the language code)."""

    provider = "wikipedia"

    def __init__(self, fetcher: SourceFetcher, endpoint: str) -> None:
        self._fetcher = fetcher
        self._endpoint = endpoint

    def endpoint(self, lang: str) -> str:
        return self._endpoint.replace("{lang}", lang)

    async def _query(self, lang: str, params: dict[str, str]) -> dict[str, Any]:
        fetched = await self._fetcher.get(self.endpoint(lang), {**_common(lang), **params})
        return await trio.to_thread.run_sync(_decoded, fetched.body)

    async def search(self, query: str, lang: str) -> list[SearchItem]:
        """Articles matching ``query``, best first (disambiguation pages left out)."""
        data = await self._query(
            lang,
            {
                "action": "query",
                "generator": "search",
                "gsrsearch": query,
                "gsrnamespace": "0",
                "gsrlimit": str(SEARCH_LIMIT),
                "prop": "info|description|pageprops",
                "inprop": "url",
                "ppprop": "disambiguation",
            },
        )
        pages = sorted(_pages(data), key=lambda p: p.get("index", 0))
        return [
            SearchItem(str(p["title"]), str(p.get("description", "")), str(p["fullurl"]))
            for p in pages
            if "fullurl" in p and "disambiguation" not in (p.get("pageprops") or {})
        ]

    def title_of(self, url: str, lang: str) -> str:
        """The page title in a page URL of this wiki: ``/wiki/Title`` beside ``/w/api.php``
        (or a Chinese variant's ``/zh-cn/Title``), or ``index.php?title=Title``."""
        parsed = httpx.URL(url)
        endpoint = httpx.URL(self.endpoint(lang))
        if parsed.scheme not in ("http", "https") or origin(parsed) != origin(endpoint):
            raise InvalidSourceURL("the url is not a page of the configured Wikipedia")
        if title := parsed.params.get("title"):
            return str(title)
        # MediaWiki's conventional layout: scripts in <root>/w/, articles at <root>/wiki/
        root = PurePosixPath(endpoint.path).parent.parent
        prefixes = [f"{root / 'wiki'}/", *(f"{root / v}/" for v in _ZH_VARIANTS)]
        for prefix in prefixes:
            if parsed.path.startswith(prefix) and len(parsed.path) > len(prefix):
                return unquote(parsed.path[len(prefix) :]).replace("_", " ")
        raise InvalidSourceURL("the url names no Wikipedia page")

    async def fetch(self, title: str, lang: str) -> SourcePage:
        """The article ``title``: its canonical title, its ``fullurl`` and its plain text."""
        data = await self._query(
            lang,
            {
                "action": "query",
                "titles": title,
                "redirects": "1",
                "converttitles": "1",
                "prop": "info|pageprops",
                "inprop": "url",
                "ppprop": "disambiguation",
            },
        )
        pages = _pages(data)
        page = pages[0] if pages else {}
        if not page or page.get("missing") or page.get("invalid") or "pageid" not in page:
            raise SourceNotFound(f"Wikipedia has no page {title!r}")
        if "disambiguation" in (page.get("pageprops") or {}):
            raise SourceNotFound(
                f"{page.get('title', title)!r} is a disambiguation page: choose one of the "
                "pages GET /api/sources/search lists",
                details={"disambiguation": True},
            )
        parsed = await self._query(
            lang,
            {
                "action": "parse",
                "pageid": str(page["pageid"]),
                "prop": "text",
                "disableeditsection": "1",
                "disabletoc": "1",
                "disablelimitreport": "1",
            },
        )
        html = (parsed.get("parse") or {}).get("text")
        if not isinstance(html, str):
            raise SourceUnavailable("the MediaWiki API answered no page text")
        url = page.get("fullurl")
        if not isinstance(url, str):
            raise SourceUnavailable("the MediaWiki API answered no page url")
        text = await trio.to_thread.run_sync(wikipedia_text, html)
        return SourcePage("wikipedia", str(page.get("title", title)), url, text)
