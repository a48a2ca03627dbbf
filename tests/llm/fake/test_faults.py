"""Injected faults, from the queue and from in-prompt directives."""

from __future__ import annotations

import httpx
import pytest
import trio

from llm.fake import FakeUpstream, Fault, InvalidFakeConfig
from tests.llm.fake.wire import chat, content_of, parse_events


async def test_http_status_fault_with_retry_after_headers(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    upstream.faults.append(Fault.http(503, retry_after=2, retry_after_ms=1500))
    upstream.faults.append(Fault.rate_limit(retry_after="Wed, 21 Oct 2015 07:28:00 GMT"))
    first = await client.post("/chat/completions", json=chat())
    assert first.status_code == 503
    assert first.headers["retry-after"] == "2"
    assert first.headers["retry-after-ms"] == "1500"
    assert first.json()["error"]["code"] == 503
    assert first.json()["error"]["message"]
    second = await client.post("/chat/completions", json=chat(stream=False))
    assert second.status_code == 429
    assert second.headers["retry-after"] == "Wed, 21 Oct 2015 07:28:00 GMT"
    third = await client.post("/chat/completions", json=chat())
    assert third.status_code == 200
    assert [r.status for r in upstream.requests] == [503, 429, 200]
    assert upstream.requests[0].fault == Fault.http(503, retry_after=2, retry_after_ms=1500)
    assert len(upstream.faults) == 0


async def test_fault_with_match_waits_for_its_request(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    upstream.faults.append(Fault.http(500, match="BOOM"))
    assert (await client.post("/chat/completions", json=chat("hello"))).status_code == 200
    assert (await client.post("/chat/completions", json=chat("say BOOM"))).status_code == 500
    assert (await client.post("/chat/completions", json=chat("say BOOM"))).status_code == 200


async def test_mid_stream_error_event(upstream: FakeUpstream, client: httpx.AsyncClient) -> None:
    upstream.faults.append(Fault("mid_stream_error", after_chunks=3, code=502, message="gone"))
    response = await client.post("/chat/completions", json=chat())
    assert response.status_code == 200
    data = [e for e in parse_events(response.text) if e.data is not None]
    assert len(data) == 4
    assert len(content_of(data)) == 12
    error = data[-1].json
    assert error["error"] == {"code": 502, "message": "gone"}
    assert error["choices"][0]["finish_reason"] == "error"
    assert "[DONE]" not in response.text


async def test_error_only_stream_and_string_code(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    upstream.faults.append(Fault("error_only"))
    response = await client.post("/chat/completions", json=chat())
    assert response.status_code == 200
    (event,) = parse_events(response.text)
    assert event.json["error"]["code"] == "server_error"
    assert event.json["choices"][0]["finish_reason"] == "error"


async def test_mid_stream_error_non_streamed(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    upstream.faults.append(Fault("mid_stream_error", after_chunks=2))
    body = (await client.post("/chat/completions", json=chat(stream=False))).json()
    assert body["error"]["code"] == "server_error"
    assert body["choices"][0]["finish_reason"] == "error"
    assert len(body["choices"][0]["message"]["content"]) == 8


@pytest.mark.parametrize("keepalives", [True, False])
async def test_hang_sends_headers_and_no_token(
    upstream: FakeUpstream, client: httpx.AsyncClient, keepalives: bool
) -> None:
    upstream.faults.append(Fault("hang", keepalives=keepalives))
    received = b""
    async with client.stream("POST", "/chat/completions", json=chat()) as response:
        assert response.status_code == 200
        with trio.move_on_after(0.2):
            async for raw in response.aiter_raw():
                received += raw
    assert b"data:" not in received
    assert (b": OPENROUTER PROCESSING" in received) == keepalives
    with trio.fail_after(5):
        await upstream.wait_for(lambda: upstream.disconnects == 1)
    assert upstream.requests[0].chunks_sent == 0


async def test_hang_after_sends_some_chunks_then_silence(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    upstream.faults.append(Fault("hang_after", after_chunks=2))
    async with client.stream("POST", "/chat/completions", json=chat()) as response:
        with trio.fail_after(5):
            await upstream.wait_for(lambda: upstream.requests[0].chunks_sent == 2)
        received = ""
        with trio.move_on_after(0.1):
            async for text in response.aiter_text():
                received += text
    events = parse_events(received)
    assert len(content_of(events)) == 8
    assert 'finish_reason":"stop' not in received


async def test_truncate_closes_mid_body(upstream: FakeUpstream, client: httpx.AsyncClient) -> None:
    upstream.faults.append(Fault("truncate", after_chunks=3))
    received = b""
    with pytest.raises(httpx.RemoteProtocolError):
        async with client.stream("POST", "/chat/completions", json=chat()) as response:
            async for raw in response.aiter_raw():
                received += raw
    assert len(content_of(parse_events(received.decode()))) == 12
    assert b"[DONE]" not in received


async def test_graceful_truncate_ends_body_without_finish(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    upstream.faults.append(Fault("truncate", after_chunks=3, graceful=True))
    response = await client.post("/chat/completions", json=chat())
    events = parse_events(response.text)
    assert len(content_of(events)) == 12
    assert all(e.json["choices"][0]["finish_reason"] is None for e in events if e.data)
    assert "[DONE]" not in response.text


async def test_truncate_non_streamed_cuts_the_json(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    upstream.faults.append(Fault("truncate"))
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post("/chat/completions", json=chat(stream=False))


async def test_disconnect_closes_before_responding(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    upstream.faults.append(Fault("disconnect"))
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post("/chat/completions", json=chat())
    assert upstream.requests[0].status is None
    assert (await client.post("/chat/completions", json=chat())).status_code == 200


async def test_faults_do_not_apply_to_unauthorised_requests(upstream: FakeUpstream) -> None:
    upstream.faults.append(Fault.http(500))
    async with httpx.AsyncClient(base_url=upstream.base_url) as client:
        assert (await client.post("/chat/completions", json=chat())).status_code == 401
    assert len(upstream.faults) == 1


async def test_directive_http_fault_applies_to_that_request_only(client: httpx.AsyncClient) -> None:
    failing = await client.post("/chat/completions", json=chat("hi [[fake:fault=http_500]]"))
    assert failing.status_code == 500
    assert failing.json()["error"]["code"] == 500
    assert (await client.post("/chat/completions", json=chat("hi"))).status_code == 200


async def test_directive_rate_limit_with_retry_after(client: httpx.AsyncClient) -> None:
    text = "[[fake:fault=rate_limit:retry_after=1:retry_after_ms=900]] hi"
    response = await client.post("/chat/completions", json=chat(text))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.headers["retry-after-ms"] == "900"


async def test_directive_times_lets_a_retry_through(client: httpx.AsyncClient) -> None:
    body = chat("hi [[fake:fault=http_503:times=1]]")
    assert (await client.post("/chat/completions", json=body)).status_code == 503
    assert (await client.post("/chat/completions", json=body)).status_code == 200
    other = chat("other [[fake:fault=http_503:times=1]]")
    assert (await client.post("/chat/completions", json=other)).status_code == 503


async def test_directive_shapes_and_mid_stream_error(client: httpx.AsyncClient) -> None:
    text = "[[fake:tokens=5]][[fake:ttft=0]][[fake:chunk=2]][[fake:fault=mid_stream_error:after=2]]"
    response = await client.post("/chat/completions", json=chat(text))
    events = parse_events(response.text)
    assert all(e.comment is None for e in events)  # ttft=0: no keep-alive
    assert content_of(events) and len(content_of(events)) == 4
    assert events[-1].json["error"]["code"] == "server_error"


async def test_directive_tokens_and_usage(client: httpx.AsyncClient) -> None:
    text = "hello [[fake:tokens=5]] [[fake:tps=0]] [[fake:usage=empty_choices]]"
    events = parse_events((await client.post("/chat/completions", json=chat(text))).text)
    assert len(content_of(events)) == 20
    assert [e for e in events if e.data][-2].json["choices"] == []


async def test_directive_say_sets_the_reply_text(client: httpx.AsyncClient) -> None:
    text = "hi [[fake:say=<script>alert(1)</script> & 你好]] [[fake:chunk=3]]"
    events = parse_events((await client.post("/chat/completions", json=chat(text))).text)
    assert content_of(events) == "[fake] <script>alert(1)</script> & 你好"
    structured = chat(text, response_format={"type": "json_object"})
    reply = await client.post("/chat/completions", json=structured)
    assert "<script>" not in content_of(parse_events(reply.text))  # JSON replies keep their shape


async def test_last_user_message_directives_win(client: httpx.AsyncClient) -> None:
    body = chat("[[fake:tokens=2]]")
    body["messages"].insert(1, {"role": "user", "content": "earlier [[fake:tokens=7]]"})
    body["messages"].insert(2, {"role": "assistant", "content": "ok [[fake:tokens=9]]"})
    response = await client.post("/chat/completions", json=body)
    assert len(content_of(parse_events(response.text))) == 8


async def test_directive_in_history_applies(client: httpx.AsyncClient) -> None:
    body = chat("now")
    body["messages"][0]["content"] += " [[fake:fault=http_402]]"
    assert (await client.post("/chat/completions", json=body)).status_code == 402


async def test_directive_fault_takes_precedence_over_queue(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    upstream.faults.append(Fault.http(500))
    response = await client.post("/chat/completions", json=chat("[[fake:fault=http_408]]"))
    assert response.status_code == 408
    assert len(upstream.faults) == 1


async def test_directive_hang(upstream: FakeUpstream, client: httpx.AsyncClient) -> None:
    async with client.stream(
        "POST", "/chat/completions", json=chat("[[fake:fault=hang:keepalives=0]]")
    ) as response:
        assert response.status_code == 200
        assert upstream.requests[0].fault == Fault("hang", keepalives=False)


@pytest.mark.parametrize(
    "text",
    ["[[fake:nope=1]]", "[[fake:fault=explode]]", "[[fake:tokens=x]]", "[[fake:fault=hang:x=1]]"],
)
async def test_bad_directive_is_a_400(client: httpx.AsyncClient, text: str) -> None:
    response = await client.post("/chat/completions", json=chat(text))
    assert response.status_code == 400
    assert "fake" in response.json()["error"]["message"]


def test_fault_validation() -> None:
    with pytest.raises(InvalidFakeConfig):
        Fault("explode")  # type: ignore[arg-type]
    with pytest.raises(InvalidFakeConfig):
        Fault.from_json({"kind": "hang", "bogus": 1})
    assert Fault.from_json(Fault.http(502).to_json()) == Fault.http(502)


async def test_models_fallback_answers_as_the_first_model_that_does_not_fail(
    client: httpx.AsyncClient,
) -> None:
    listed = {"model": "v/a", "models": ["v/a", "v/b", "v/c"]}
    events = parse_events((await client.post("/chat/completions", json=chat("hi", **listed))).text)
    assert {e.json["model"] for e in events if e.data and e.data != "[DONE]"} == {"v/a"}
    text = "hi [[fake:fail_model=v/a]] [[fake:fail_model=v/b]]"
    events = parse_events((await client.post("/chat/completions", json=chat(text, **listed))).text)
    assert {e.json["model"] for e in events if e.data and e.data != "[DONE]"} == {"v/c"}
    text = "hi [[fake:fail_model=v/c]]" + "".join(f"[[fake:fail_model=v/{m}]]" for m in "ab")
    response = await client.post("/chat/completions", json=chat(text, **listed))
    assert response.status_code == 502
    assert "v/a, v/b, v/c failed" in response.json()["error"]["message"]
    # without a list, a failed model fails the request
    one = chat("[[fake:fail_model=v/a]]", model="v/a")
    assert (await client.post("/chat/completions", json=one)).status_code == 502
    assert (await client.post("/chat/completions", json=chat("x", model="v/b"))).status_code == 200
