"""Errors raised by the LLM client.

Every failure of a call surfaces as one of these; httpx errors, HTTP statuses
and in-stream ``error`` events are mapped here at the boundary. An error's
``message`` describes the failure and is never model output.

::

    LLMError                      .message, .status (HTTP or in-stream code), .retry_after
    ├── AuthenticationError       401 / 403, or no API key configured
    ├── PaymentRequired           402
    ├── RateLimited               429 (after retries); .retry_after: float | None
    ├── BadRequest                400 / 404 / 413 / 422 ... (never retried)
    ├── UpstreamUnavailable       5xx, 408, connection errors (after retries)
    ├── LLMTimeout
    │   ├── FirstTokenTimeout     no token within `timeout` of an attempt's start
    │   ├── IdleTimeout           no token within `idle_timeout` once streaming
    │   └── TotalTimeout          the logical call exceeded `total_timeout`
    ├── ProtocolError             malformed or truncated stream, error event without a
    │                             known code, invalid structured JSON after the retry
    └── Overloaded                no limiter slot within `queue_timeout`; .retry_after: float
"""

from __future__ import annotations


class LLMError(Exception):
    """Base of every LLM client error."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status!r})"


class AuthenticationError(LLMError):
    """The provider rejected the key (401/403), or no key is configured."""


class PaymentRequired(LLMError):
    """The account is out of credit (402)."""


class RateLimited(LLMError):
    """Rate limited (429) and still so after the allowed retries."""


class BadRequest(LLMError):
    """The request was rejected as invalid (400, 404, 422, ...); retrying cannot help."""


class UpstreamUnavailable(LLMError):
    """The provider failed (5xx, 408) or could not be reached, after the allowed retries."""


class LLMTimeout(LLMError):
    """A deadline of the call passed."""


class FirstTokenTimeout(LLMTimeout):
    """No token arrived within ``timeout`` of an attempt's start (keep-alives do not count)."""


class IdleTimeout(LLMTimeout):
    """The stream went silent for longer than ``idle_timeout`` between tokens."""


class TotalTimeout(LLMTimeout):
    """The whole logical call (every retry and the stream) exceeded ``total_timeout``."""


class ProtocolError(LLMError):
    """The upstream broke the protocol: malformed or truncated stream, an error event
    mid-stream, or structured output that stayed invalid after the feedback retry."""


class Overloaded(LLMError):
    """No LLM slot (global or per-user) became free within ``queue_timeout``."""

    retry_after: float

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, retry_after=retry_after)
