"""Generation sources: pages of Wikipedia and Baidu Baike fetched as a character's source text.

Its own HTTP client, only the configured hosts; see `app.sources.fetcher`."""

from app.sources.client import SourceClient, open_sources
from app.sources.errors import InvalidSourceURL, SourceError, SourceNotFound, SourceUnavailable
from app.sources.models import (
    MAX_SOURCE_CHARS,
    PROVIDERS,
    Provider,
    SearchItem,
    SourcePage,
    SourceQuery,
)
from app.sources.settings import SourceSettings

__all__ = [
    "MAX_SOURCE_CHARS",
    "PROVIDERS",
    "InvalidSourceURL",
    "Provider",
    "SearchItem",
    "SourceClient",
    "SourceError",
    "SourceNotFound",
    "SourcePage",
    "SourceQuery",
    "SourceSettings",
    "SourceUnavailable",
    "open_sources",
]
