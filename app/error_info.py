"""Translate the app's exceptions into the API's error vocabulary (status, code, message).

Used both for HTTP error responses and for SSE `error` events (the services use it); imports no
web framework. The web framework's own exceptions (werkzeug's HTTP errors, quart-schema's
validation errors) are translated by the HTTP layer, `app.http_errors.describe_http`.
"""

from __future__ import annotations

from typing import Any

import llm
import storage
from app.errors import ApiError
from app.sources.errors import InvalidSourceURL, SourceNotFound, SourceUnavailable


class ErrorInfo:
    """Status, code, message, details and retry-after for one error."""

    __slots__ = ("status", "code", "message", "details", "retry_after")

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}

    def event(self) -> dict[str, Any]:
        """The payload of an SSE `error` event."""
        return {"code": self.code, "message": self.message}


def describe(exc: BaseException) -> ErrorInfo:
    """Translate an exception into the API's error vocabulary (unknown: 500 `internal_error`)."""
    if isinstance(exc, ApiError):
        return ErrorInfo(exc.status, exc.code, exc.message, exc.details, exc.retry_after)
    if isinstance(exc, SourceNotFound):
        return ErrorInfo(404, "source_not_found", exc.message, exc.details)
    if isinstance(exc, SourceUnavailable):
        return ErrorInfo(502, "source_unavailable", exc.message, exc.details)
    if isinstance(exc, InvalidSourceURL):
        return ErrorInfo(400, "invalid_request", exc.message, exc.details)
    if isinstance(exc, llm.Overloaded):
        return ErrorInfo(
            503,
            "overloaded",
            "too many LLM requests are waiting; retry later",
            retry_after=max(1.0, exc.retry_after or 1.0),
        )
    if isinstance(exc, llm.LLMTimeout):
        return ErrorInfo(504, "llm_timeout", f"the LLM provider timed out: {exc}")
    if isinstance(exc, llm.LLMError):
        return ErrorInfo(502, "llm_error", f"the LLM provider failed: {exc}")
    if isinstance(exc, storage.StorageUnavailable):
        return ErrorInfo(503, "storage_unavailable", "the database is unavailable", retry_after=1)
    if isinstance(exc, storage.InvalidReference):
        return ErrorInfo(400, "invalid_request", str(exc))
    return ErrorInfo(500, "internal_error", "internal server error")
