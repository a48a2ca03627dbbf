"""Retry policy: what is retried, Retry-After parsing, backoff bounds."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from llm.errors import (
    AuthenticationError,
    BadRequest,
    FirstTokenTimeout,
    IdleTimeout,
    PaymentRequired,
    ProtocolError,
    RateLimited,
    TotalTimeout,
    UpstreamUnavailable,
)
from llm.protocol import error_for_status
from llm.retry import RetryPolicy, is_retryable, parse_retry_after


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (408, True),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, False),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (402, False),
        (422, False),
    ],
)
def test_statuses(status: int, retryable: bool) -> None:
    assert is_retryable(error_for_status(status, "x")) is retryable


def test_402_only_with_retry_after() -> None:
    assert not is_retryable(PaymentRequired("x", status=402))
    assert is_retryable(PaymentRequired("x", status=402, retry_after=3))


def test_errors_without_status() -> None:
    assert is_retryable(UpstreamUnavailable("connection reset"))
    assert is_retryable(FirstTokenTimeout("slow"))
    assert not is_retryable(IdleTimeout("idle"))
    assert not is_retryable(TotalTimeout("total"))
    assert not is_retryable(ProtocolError("garbage"))
    assert not is_retryable(AuthenticationError("no API key configured"))


def test_status_mapping() -> None:
    assert isinstance(error_for_status(401, ""), AuthenticationError)
    assert isinstance(error_for_status(403, ""), AuthenticationError)
    assert isinstance(error_for_status(402, ""), PaymentRequired)
    assert isinstance(error_for_status(429, ""), RateLimited)
    assert isinstance(error_for_status(400, ""), BadRequest)
    assert isinstance(error_for_status(503, ""), UpstreamUnavailable)
    assert error_for_status(418, "").message == "upstream returned HTTP 418"


def test_parse_retry_after_seconds_and_ms() -> None:
    assert parse_retry_after(httpx.Headers({"Retry-After": "3"})) == 3.0
    assert parse_retry_after(httpx.Headers({"Retry-After": " 1.5 "})) == 1.5
    assert parse_retry_after(httpx.Headers({"retry-after-ms": "250"})) == 0.25
    both = httpx.Headers({"Retry-After": "3", "retry-after-ms": "2500"})
    assert parse_retry_after(both) == 2.5
    assert parse_retry_after(httpx.Headers({})) is None
    assert parse_retry_after(httpx.Headers({"Retry-After": "soon"})) is None
    assert parse_retry_after(httpx.Headers({"Retry-After": "-1"})) is None
    assert parse_retry_after(httpx.Headers({"Retry-After": "nan"})) is None


def test_parse_retry_after_http_date() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    later = format_datetime(datetime(2025, 1, 1, 12, 0, 7, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(httpx.Headers({"Retry-After": later}), now=now) == 7.0
    earlier = format_datetime(datetime(2025, 1, 1, 11, 0, 0, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(httpx.Headers({"Retry-After": earlier}), now=now) == 0.0


def test_delay_honours_retry_after_up_to_cap() -> None:
    policy = RetryPolicy(max_retries=2, retry_after_cap=10)
    assert policy.delay(RateLimited("x", status=429, retry_after=4), 0) == 4
    assert policy.delay(RateLimited("x", status=429, retry_after=10), 1) == 10
    assert policy.delay(RateLimited("x", status=429, retry_after=11), 0) is None
    assert policy.delay(RateLimited("x", status=429, retry_after=1), 2) is None  # budget spent
    assert policy.delay(BadRequest("x", status=400, retry_after=1), 0) is None


def test_backoff_is_exponential_with_jitter() -> None:
    policy = RetryPolicy(max_retries=10, backoff_initial=0.5, backoff_max=8, rng=random.Random(1))
    err = UpstreamUnavailable("x", status=502)
    for retries_done, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (6, 8.0)]:
        delays = {policy.delay(err, retries_done) for _ in range(50)}
        assert all(d is not None and ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered
