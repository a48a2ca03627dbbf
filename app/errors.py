"""Domain errors raised by the services; `app.http_errors` is the one place mapping them to HTTP.

    ApiError(status, code, message, details)
    ├── InvalidRequest          400 invalid_request
    │   ├── InvalidImage        400 invalid_image (not a PNG/JPEG/WebP, or too many pixels)
    │   └── InvalidCard         400 invalid_card (not a Character Card V2/V3)
    ├── Unauthenticated         401 unauthenticated / invalid_credentials
    ├── Forbidden               403 forbidden / account_disabled
    ├── NotFound                404 not_found
    ├── Conflict                409 conflict / username_taken / generation_in_progress
    │   └── GenerationInProgress  409 generation_in_progress
    ├── PayloadTooLarge         413 payload_too_large
    ├── UnsupportedMediaType    415 invalid_request (a Content-Encoding other than identity)
    ├── RateLimited             429 rate_limited (with retry_after)
    ├── QuotaExceeded           429 quota_exceeded (Retry-After: until the month's end)
    └── ServiceUnavailable      503 overloaded / llm_unavailable / storage_unavailable
LLM errors (`llm.LLMError`), storage errors and source errors (`app.sources.errors`: 404
`source_not_found`, 502 `source_unavailable`) are translated in `app.error_info` too.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error with an HTTP status and a stable snake_case code."""

    status = 500
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details
        self.retry_after = retry_after


class InvalidRequest(ApiError):
    status = 400
    code = "invalid_request"


class InvalidImage(InvalidRequest):
    code = "invalid_image"


class InvalidCard(InvalidRequest):
    code = "invalid_card"


class Unauthenticated(ApiError):
    status = 401
    code = "unauthenticated"


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class GenerationInProgress(Conflict):
    """409 ``generation_in_progress``; the code is the class's own, so it survives being
    re-raised as a copy (``storage.group_commit`` copies errors raised in a write)."""

    code = "generation_in_progress"


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ApiError):
    status = 415
    code = "invalid_request"


class RateLimited(ApiError):
    status = 429
    code = "rate_limited"
class QuotaExceeded(ApiError):
    status = 429
    code = "quota_exceeded"


class ServiceUnavailable(ApiError):
    status = 503
    code = "overloaded"
