"""Translate any exception into the API's error vocabulary (status, code, message).

Used both for HTTP error responses and for SSE `error` events; imports no web framework.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

import llm
import storage
from app.errors import ApiError

_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "invalid_request",
    429: "rate_limited",
}


_OBJECT_EXPECTED = {"model_type", "model_attributes_type", "dataclass_type", "dict_type"}


def _public_msg(kind: str, msg: str) -> str:
    """pydantic's message, without the names of our classes ("instance of ChatIn")."""
    return "Input should be a JSON object" if kind in _OBJECT_EXPECTED else msg


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
    """Translate any exception into the API's error vocabulary."""
    if isinstance(exc, ApiError):
        return ErrorInfo(exc.status, exc.code, exc.message, exc.details, exc.retry_after)
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
    if isinstance(exc, RequestSchemaValidationError):
        cause = exc.validation_error
        details: Any = None
        if isinstance(cause, ValidationError):
            details = [
                {"loc": list(e["loc"]), "msg": _public_msg(e["type"], e["msg"]), "type": e["type"]}
                for e in cause.errors(include_url=False, include_context=False, include_input=False)
            ]
        elif cause is not None:
            details = str(cause)
        return ErrorInfo(400, "invalid_request", "the request failed validation", details)
    if isinstance(exc, HTTPException):
        status = exc.code or 500
        code = _HTTP_CODES.get(status, "http_error")
        message = exc.description or exc.name
        if status == 404:
            message = "no such resource"
        return ErrorInfo(status, code, message)
    return ErrorInfo(500, "internal_error", "internal server error")
