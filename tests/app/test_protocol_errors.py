"""Every error is JSON, including those Hypercorn answers below the app, and 401s say how to
authenticate (issue 11 point 5), over raw sockets and real HTTP."""

from __future__ import annotations

import pytest
import trio

from tests.app.harness import Live
from tests.app.rawhttp import RawConnection, RawResponse, request_head


async def raw_exchange(live: Live, data: bytes) -> RawResponse:
    conn = await RawConnection.open(live.base_url)
    try:
        with trio.fail_after(10):
            await conn.send(data)
            response = await conn.read_response()
            assert response is not None
            assert await conn.closed_by_server()
            return response
    finally:
        await conn.aclose()


async def test_a_100_kb_header_gets_a_json_431(live: Live) -> None:
    head = request_head("GET", "/api/me", {"Authorization": "Bearer " + "a" * 100_000})
    response = await raw_exchange(live, head)
    assert response.status == 431
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"].startswith("the request's headers are larger than the limit of ")


@pytest.mark.parametrize(
    "data",
    [
        request_head("POST", "/api/auth/login", {"Content-Length": "-1"}),
        b"POST /api/auth/login HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n"
        b"Content-Length: 2\r\n\r\n",
        b"NOT HTTP\r\n\r\n",
    ],
)
async def test_malformed_framing_gets_a_json_400(live: Live, data: bytes) -> None:
    response = await raw_exchange(live, data)
    assert response.status == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == {
        "code": "invalid_request",
        "message": "the request is not valid HTTP/1.1",
    }


async def test_an_unknown_transfer_encoding_gets_a_json_501(live: Live) -> None:
    head = request_head("POST", "/api/auth/login", {"Transfer-Encoding": "x"})
    response = await raw_exchange(live, head)
    assert response.status == 501
    assert response.json()["error"]["code"] == "invalid_request"


async def test_logout_204_has_no_content_type(live: Live) -> None:
    session = await live.register()
    r = await session.request("POST", "/api/auth/logout")
    assert r.status_code == 204 and r.content == b""
    assert "content-type" not in r.headers


async def test_every_401_carries_www_authenticate_bearer(live: Live) -> None:
    await live.register("bob", "password123")
    answers = [
        await live.client.get("/api/me"),
        await live.client.get("/api/me", headers={"Authorization": "Bearer nope"}),
        await live.client.post("/api/characters", json={"name": "x"}),
        await live.client.post(
            "/api/auth/login", json={"username": "bob", "password": "wrong-password"}
        ),
    ]
    for r in answers:
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"]["code"] in {"unauthenticated", "invalid_credentials"}
