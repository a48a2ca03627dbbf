"""Steering the fake from another process: control endpoints and the CLI."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx
import pytest
import trio

from llm.fake import FakeBehaviour, FakeUpstream, InvalidFakeConfig
from tests.llm.fake.wire import AUTH, chat, content_of, parse_events


@pytest.fixture
async def control(upstream: FakeUpstream):  # type: ignore[no-untyped-def]
    root = upstream.base_url.removesuffix("/v1")
    async with httpx.AsyncClient(base_url=root + "/_fake") as client:
        yield client


async def test_stats_counts_requests(
    upstream: FakeUpstream, client: httpx.AsyncClient, control: httpx.AsyncClient
) -> None:
    await client.post("/chat/completions", json=chat())
    await client.post("/chat/completions", json=chat(stream=False))
    stats = (await control.get("/stats")).json()
    assert stats["requests_total"] == 2
    assert stats["active"] == 0
    assert stats["max_active"] == 1
    assert stats["disconnects"] == 0
    assert stats["completed"] == 2
    assert stats["chunks_sent"] == 40
    assert stats["statuses"] == {"200": 2}
    assert stats["internal_errors"] == 0


async def test_put_behaviour_patches_fields(
    upstream: FakeUpstream, client: httpx.AsyncClient, control: httpx.AsyncClient
) -> None:
    response = await control.put("/behaviour", json={"tokens": 3, "tokens_per_second": 0})
    assert response.status_code == 200
    assert response.json()["tokens"] == 3
    assert upstream.behaviour.tokens == 3
    assert upstream.behaviour.tokens_per_second == 0.0
    assert (await control.get("/behaviour")).json() == upstream.behaviour.to_json()
    events = parse_events((await client.post("/chat/completions", json=chat())).text)
    assert len(content_of(events)) == 12


async def test_float_fields_set_as_ints_still_take_float_patches(
    upstream: FakeUpstream, control: httpx.AsyncClient
) -> None:
    upstream.behaviour.first_token_delay = 0  # an int, as a test mutating in place may store
    response = await control.put("/behaviour", json={"first_token_delay": 0.25})
    assert response.status_code == 200
    assert upstream.behaviour.first_token_delay == 0.25
    behaviour = FakeBehaviour(tokens_per_second=0, keepalive_interval=1)
    assert isinstance(behaviour.tokens_per_second, float)
    assert isinstance(behaviour.keepalive_interval, float)
    behaviour.patch({"tokens_per_second": 2.5, "keepalive_interval": 2})
    assert behaviour.tokens_per_second == 2.5
    assert isinstance(behaviour.keepalive_interval, float)
    behaviour.patch({"keepalive_interval": 0.5})
    for bad in ({"split_utf8": 1}, {"tokens_per_second": True}, {"tokens": 1.5}, {"tokens": True}):
        with pytest.raises(InvalidFakeConfig):
            behaviour.patch(bad)


@pytest.mark.parametrize(
    "patch", [{"nope": 1}, {"tokens": "many"}, {"chunk_chars": 0}, {"usage_chunk_style": "x"}, [1]]
)
async def test_bad_behaviour_patch_is_400_and_changes_nothing(
    upstream: FakeUpstream, control: httpx.AsyncClient, patch: object
) -> None:
    before = upstream.behaviour.to_json()
    response = await control.put("/behaviour", json=patch)
    assert response.status_code == 400
    assert upstream.behaviour.to_json() == before


async def test_post_faults_and_reset(
    upstream: FakeUpstream, client: httpx.AsyncClient, control: httpx.AsyncClient
) -> None:
    response = await control.post("/faults", json={"kind": "http_status", "status": 502})
    assert response.json() == {"faults_pending": 1}
    await control.post("/faults", json=[{"kind": "http_status", "status": 429, "retry_after": 3}])
    assert (await client.post("/chat/completions", json=chat())).status_code == 502
    limited = await client.post("/chat/completions", json=chat())
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "3")
    await control.post("/faults", json={"kind": "hang"})
    assert (await control.post("/faults", json={"kind": "explode"})).status_code == 400

    stats = (await control.post("/reset")).json()
    assert stats["requests_total"] == 0
    assert stats["faults_pending"] == 0
    assert upstream.requests == []
    assert (await client.post("/chat/completions", json=chat())).status_code == 200


async def test_unknown_control_route(control: httpx.AsyncClient) -> None:
    assert (await control.get("/nothing")).status_code == 404


def test_behaviour_validation() -> None:
    with pytest.raises(InvalidFakeConfig):
        FakeBehaviour(line_ending="\t")
    with pytest.raises(InvalidFakeConfig):
        FakeBehaviour(tokens=-1)
    behaviour = FakeBehaviour()
    behaviour.patch({"first_token_delay": 1, "usage_chunk_style": "alternate"})
    assert behaviour.first_token_delay == 1.0
    assert isinstance(behaviour.first_token_delay, float)


async def test_max_recorded_keeps_the_newest() -> None:
    fake = FakeUpstream(FakeBehaviour(max_recorded=2), host="127.0.0.1", port=1)
    for path in ("/a", "/b", "/c"):
        fake.begin("POST", path, {})
    assert [r.path for r in fake.requests] == ["/b", "/c"]
    assert fake.requests_total == 3


async def _first_line(process: trio.Process) -> str:
    assert process.stdout is not None
    line = b""
    with trio.fail_after(20):
        while not line.endswith(b"\n"):
            chunk = await process.stdout.receive_some(1)
            assert chunk, "the CLI exited before printing its URL"
            line += chunk
    return line.decode().strip()


async def test_cli_prints_base_url_and_serves() -> None:
    command = [sys.executable, "-m", "llm.fake", "--ttft", "0", "--tokens", "3", "--tps", "0"]
    process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE)
    try:
        base_url = await _first_line(process)
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        async with httpx.AsyncClient(base_url=base_url, headers=AUTH) as client:
            response = await client.post("/chat/completions", json=chat())
            assert len(content_of(parse_events(response.text))) == 12
    finally:
        process.kill()
        await process.wait()
        if process.stdout is not None:
            await process.stdout.aclose()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_cli_exits_quietly_on_sigint_and_sigterm(signum: signal.Signals) -> None:
    code = "from llm.fake import run_fake_upstream_cli; run_fake_upstream_cli()"
    command = [sys.executable, "-c", code, "--port", "0"]
    process = await trio.lowlevel.open_process(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert (await _first_line(process)).startswith("http://")
        process.send_signal(signum)
        with trio.fail_after(20):
            assert await process.wait() == 0
            assert process.stderr is not None
            stderr = b""
            while chunk := await process.stderr.receive_some():
                stderr += chunk
        assert b"Traceback" not in stderr, stderr.decode()
    finally:
        process.kill()
        await process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                await stream.aclose()
