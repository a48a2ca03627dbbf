"""Bad request bodies are 4xx JSON errors that name the problem, never a 500 or a traceback
(issue 11 point 2, issue 12 "request errors name the real problem"), over real HTTP."""

from __future__ import annotations

import gzip
import logging

import pytest

from tests.app.harness import Live

JSON = {"Content-Type": "application/json"}
LOGIN = "/api/auth/login"


def no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert noisy == [], [r.getMessage() for r in noisy]


async def error_of(
    live: Live, path: str, content: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, str]]:
    r = await live.client.post(path, content=content, headers=headers)
    assert r.headers["content-type"] == "application/json"
    return r.status_code, r.json()["error"]


@pytest.mark.parametrize(
    "content",
    [b'{"username": "al\xffce", "password": "pw123456"}', b"\xff\xfe{}", b'{"a": "\xed\xa0\x80"}'],
)
async def test_a_body_that_is_not_utf8_is_400(
    live: Live, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    status, error = await error_of(live, LOGIN, content, JSON)
    assert status == 400 and error["code"] == "invalid_request"
    assert error["message"].startswith("request body is not valid JSON: ")
    no_errors_logged(caplog)


async def test_a_compressed_body_is_415(live: Live, caplog: pytest.LogCaptureFixture) -> None:
    content = gzip.compress(b'{"username": "alice", "password": "pw123456"}')
    status, error = await error_of(live, LOGIN, content, {**JSON, "Content-Encoding": "gzip"})
    assert status == 415 and error["code"] == "invalid_request"
    assert "Content-Encoding 'gzip' is not supported" in error["message"]
    no_errors_logged(caplog)


@pytest.mark.parametrize("depth", [1000, 5000, 100_000])
async def test_deeply_nested_json_is_400_on_the_login_route(
    live: Live, depth: int, caplog: pytest.LogCaptureFixture
) -> None:
    content = b'{"username": ' + b"[" * depth + b"]" * depth + b', "password": "pw123456"}'
    status, error = await error_of(live, LOGIN, content, JSON)
    assert status == 400 and error["code"] == "invalid_request"
    no_errors_logged(caplog)


async def test_malformed_json_names_the_parser_error_and_position(live: Live) -> None:
    status, error = await error_of(live, LOGIN, b'{"username": "alice", "password": }', JSON)
    assert status == 400 and error["code"] == "invalid_request"
    assert error["message"].startswith("request body is not valid JSON: ")
    assert "line 1 column 35 (char 34)" in error["message"]


@pytest.mark.parametrize(
    ("headers", "said"),
    [({}, "(none was sent)"), ({"Content-Type": "text/plain"}, "(got 'text/plain')")],
)
async def test_a_missing_or_wrong_content_type_says_what_to_send(
    live: Live, headers: dict[str, str], said: str
) -> None:
    session = await live.register()
    character = await session.character()
    r = await session.request(
        "POST",
        f"/api/characters/{character['id']}/chat",
        content=b'{"content": "hi"}',
        headers=headers,
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"] == f"send Content-Type: application/json {said}"
    assert "ChatIn" not in r.text


@pytest.mark.parametrize("content", [b"", b"  \r\n"])
async def test_an_empty_body_says_what_to_send(live: Live, content: bytes) -> None:
    status, error = await error_of(live, LOGIN, content, JSON)
    assert status == 400
    assert error["message"] == (
        "the request body is empty; send Content-Type: application/json and a JSON body"
    )


async def test_json_that_is_not_an_object_does_not_name_a_class(live: Live) -> None:
    r = await live.client.post(LOGIN, content=b"[1, 2]", headers=JSON)
    assert r.status_code == 400
    assert r.json()["error"]["details"][0]["msg"] == "Input should be a JSON object"
    assert "LoginIn" not in r.text


async def test_413_says_the_limit_in_bytes(live: Live) -> None:
    limit = live.services.settings.max_body_bytes
    status, error = await error_of(live, LOGIN, b"x" * (limit + 1), JSON)
    assert status == 413 and error["code"] == "payload_too_large"
    assert error["message"] == f"the request body is larger than the limit of {limit} bytes"
