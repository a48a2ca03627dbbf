"""What the sources package answers: search items, fetched pages, and what a client asks for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Provider = Literal["wikipedia", "baike"]
PROVIDERS: tuple[Provider, ...] = ("wikipedia", "baike")

# API.md: a source's main text is cut to this many characters, like a pasted `source_text`
MAX_SOURCE_CHARS = 20_000


@dataclass(frozen=True)
class SearchItem:
    """One candidate page (several people share a name)."""

    title: str
    description: str
    url: str


@dataclass(frozen=True)
class SourcePage:
    """A fetched page: where it is and its main text (≤ MAX_SOURCE_CHARS)."""

    provider: Provider
    title: str
    url: str
    text: str


@dataclass(frozen=True)
class SourceQuery:
    """The page a client names: by ``title`` or by ``url`` (one of them), in ``lang``."""

    provider: Provider
    title: str | None = None
    url: str | None = None
    lang: str = "zh"
