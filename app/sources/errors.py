"""Errors of the sources package; `app.error_info.describe` maps them to HTTP.

    SourceError
    ├── SourceNotFound      404 source_not_found (no such page, or a disambiguation page)
    ├── SourceUnavailable   502 source_unavailable (failing, timing out, too large, redirected
    │                       to another origin)
    └── InvalidSourceURL    400 invalid_request (a `url` that is not a page of the configured
                            source)
"""

from __future__ import annotations

from typing import Any


class SourceError(Exception):
    """A generation source could not be used."""

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class SourceNotFound(SourceError):
    """The source has no such page (or only a disambiguation page)."""


class SourceUnavailable(SourceError):
    """The source failed, timed out, answered too much, or redirected to another origin."""


class InvalidSourceURL(SourceError):
    """A `url` given by the client that is not a page of the configured source."""
