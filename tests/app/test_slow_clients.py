"""Slow-header clients are cut, idle keep-alive connections end, and open connections are
measured (issue 11 point 4), over raw sockets against a real Hypercorn server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from tests.app.harness import Live, live_server, make_settings
from tests.app.rawhttp import RawConnection, request_head

HEADER_TIMEOUT = 0.5
HANG_GUARD = 10


@pytest.fixture
async def live(db_url: str, fake: Any) -> AsyncIterator[Live]:
    settings = make_settings(db_url, fake.base_url, header_timeout=HEADER_TIMEOUT)
    async with live_server(settings) as server:
        yield server


async def test_headers_sent_one_byte_at_a_time_are_cut_and_others_stay_served(live: Live) -> None:
    conn = await RawConnection.open(live.base_url)
    head = request_head("GET", "/healthz", {"X-Pad": "a" * 10_000})  # 200 s at 50 bytes/s
    sent = 0
    try:
        with trio.fail_after(HANG_GUARD):
            while True:
                try:
                    await conn.send(head[sent : sent + 1])
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    break
                sent += 1
                if sent % 10 == 0:  # another client is served meanwhile
                    assert (await live.client.get("/healthz")).status_code == 200
                with trio.move_on_after(0.02):
                    if await conn.closed_by_server():
                        break
    finally:
        await conn.aclose()
    assert sent < len(head)


async def test_an_idle_keep_alive_connection_is_closed_after_a_response(live: Live) -> None:
    conn = await RawConnection.open(live.base_url)
    try:
        with trio.fail_after(HANG_GUARD):
            await conn.send(request_head("GET", "/healthz"))
            response = await conn.read_response()
            assert response is not None and response.status == 200
            assert await conn.closed_by_server()
    finally:
        await conn.aclose()


@pytest.fixture
async def patient(db_url: str, fake: Any) -> AsyncIterator[Live]:
    """A server with the default header timeout: idle connections stay open for the test."""
    async with live_server(make_settings(db_url, fake.base_url)) as server:
        yield server


async def test_open_connections_are_measured_per_client(patient: Live) -> None:
    live = patient
    conns = [await RawConnection.open(live.base_url) for _ in range(3)]
    try:
        for conn in conns:  # each connection is accepted and in use once it has an answer
            await conn.send(request_head("GET", "/healthz"))
            assert await conn.read_response() is not None
        text = (await live.client.get("/metrics")).text
        values = {
            line.split()[0]: float(line.split()[1])
            for line in text.splitlines()
            if line.startswith("fastnpc_http_connections")
        }
        assert values["fastnpc_http_connections_max_per_client"] >= 4  # 3 + the test's client
        assert values["fastnpc_http_connections"] >= 4
    finally:
        for conn in conns:
            await conn.aclose()
