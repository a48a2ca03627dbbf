from __future__ import annotations

from typing import Any

import trio

from tests.app.harness import Live, Session


async def _history(s: Session, cid: str, **params: Any) -> dict[str, Any]:
    r = await s.request("GET", f"/api/characters/{cid}/chat/messages", params=params)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_chat_json(live: Live, fake: Any) -> None:
    alice = await live.register()
    mira = await alice.character("Mira")
    r = await alice.request(
        "POST", f"/api/characters/{mira['id']}/chat", json={"content": "Hello there"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user_message"]["content"] == "Hello there"
    assert body["user_message"]["role"] == "user"
    reply = body["reply"]
    assert reply["role"] == "assistant" and reply["status"] == "complete"
    assert reply["character_id"] == mira["id"] and reply["content"]
    # the user message reached the model verbatim as the final message
    sent = fake.requests[-1].body["messages"]
    assert sent[-1] == {"role": "user", "content": "Hello there"}
    assert "Mira" in sent[0]["content"]
    page = await _history(alice, mira["id"])
    assert [m["id"] for m in page["items"]] == [body["user_message"]["id"], reply["id"]]
    assert page["next_before"] is None


async def test_chat_stream(live: Live) -> None:
    alice = await live.register()
    mira = await alice.character("Mira")
    async with alice.stream(
        f"/api/characters/{mira['id']}/chat", {"content": "Tell me\na story"}
    ) as sse:
        assert sse.response.headers["content-type"].startswith("text/event-stream")
        events = await sse.collect()
    names = [n for n, _ in events]
    assert names[0] == "user_message" and names[-2:] == ["reply", "done"]
    assert "delta" in names
    text = "".join(d["text"] for n, d in events if n == "delta")
    assert text == events[-2][1]["content"]
    assert events[0][1]["content"] == "Tell me\na story"


async def test_pagination(live: Live) -> None:
    alice = await live.register()
    mira = await alice.character("Mira")
    for i in range(3):
        r = await alice.request(
            "POST", f"/api/characters/{mira['id']}/chat", json={"content": f"m{i}"}
        )
        assert r.status_code == 200
    page = await _history(alice, mira["id"], limit=4)
    assert len(page["items"]) == 4 and page["next_before"] == page["items"][0]["id"]
    older = await _history(alice, mira["id"], limit=4, before=page["next_before"])
    assert len(older["items"]) == 2 and older["next_before"] is None
    assert [m["content"] for m in older["items"]][0] == "m0"
    r = await alice.request(
        "GET", f"/api/characters/{mira['id']}/chat/messages", params={"limit": 0}
    )
    assert r.status_code == 400


async def test_second_message_conflicts_while_generating(live: Live) -> None:
    alice = await live.register()
    mira = await alice.character("Mira")
    path = f"/api/characters/{mira['id']}/chat"
    async with alice.stream(path, {"content": "slow one [[fake:ttft=1]]"}) as sse:
        async for _, name, _ in sse:
            if name == "user_message":
                break
        r = await alice.request("POST", path, json={"content": "again"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "generation_in_progress"
        r = await alice.request("POST", f"{path}/regenerate")
        assert r.status_code == 409
    # the rejected message changed nothing
    assert all(m["content"] != "again" for m in (await _history(alice, mira["id"]))["items"])


async def test_stop_stores_interrupted(live: Live) -> None:
    alice = await live.register()
    mira = await alice.character("Mira")
    path = f"/api/characters/{mira['id']}/chat"
    async with alice.stream(path, {"content": "long [[fake:tokens=400]] [[fake:tps=40]]"}) as sse:
        events = []
        async for _, name, data in sse:
            events.append((name, data))
            if name == "delta":
                r = await alice.request("POST", f"{path}/stop")
                assert r.json() == {"stopped": True}
                break
        async for _, name, data in sse:
            events.append((name, data))
    names = [n for n, _ in events]
    assert names[-2:] == ["reply", "done"]
    reply = events[-2][1]
    assert reply["status"] == "interrupted" and reply["content"]
    items = (await _history(alice, mira["id"]))["items"]
    assert items[-1]["status"] == "interrupted"
    r = await alice.request("POST", f"{path}/stop")
    assert r.json() == {"stopped": False}


async def test_disconnect_does_not_stop_generation(live: Live) -> None:
    alice = await live.register()
    mira = await alice.character("Mira")
    path = f"/api/characters/{mira['id']}/chat"
    async with alice.stream(path, {"content": "go [[fake:tokens=30]] [[fake:tps=100]]"}) as sse:
        async for _, name, _ in sse:
            if name == "delta":
                break
    # the client is gone; the reply is still completed and stored
    await live.services.runs.wait_idle()
    items = (await _history(alice, mira["id"]))["items"]
    assert items[-1]["role"] == "assistant" and items[-1]["status"] == "complete"


async def test_provider_failure(live: Live) -> None:
    alice = await live.register()
    mira = await alice.character("Mira")
    path = f"/api/characters/{mira['id']}/chat"
    r = await alice.request(
        "POST", path, json={"content": "fail [[fake:fault=mid_stream_error:after=3]]"}
    )
    assert r.status_code == 502 and r.json()["error"]["code"] == "llm_error"
    items = (await _history(alice, mira["id"]))["items"]
    assert items[-1]["role"] == "assistant" and items[-1]["status"] == "error"

    async with alice.stream(path, {"content": "fail [[fake:fault=http_401]]"}) as sse:
        events = await sse.collect()
    assert [n for n, _ in events][-1] == "error"
    assert events[-1][1]["code"] == "llm_error"
    # no text before the failure: nothing stored for it
    items = (await _history(alice, mira["id"]))["items"]
    assert items[-1]["role"] == "user"


async def test_regenerate_and_clear(live: Live) -> None:
    alice = await live.register()
    mira = await alice.character("Mira")
    path = f"/api/characters/{mira['id']}/chat"
    r = await alice.request("POST", f"{path}/regenerate")
    assert r.status_code == 409
    first = (await alice.request("POST", path, json={"content": "hi"})).json()
    r = await alice.request("POST", f"{path}/regenerate")
    assert r.status_code == 200, r.text
    new = r.json()["reply"]
    items = (await _history(alice, mira["id"]))["items"]
    assert [m["id"] for m in items] == [first["user_message"]["id"], new["id"]]
    r = await alice.request("DELETE", path)
    assert r.status_code == 204
    assert (await _history(alice, mira["id"]))["items"] == []


async def test_ten_concurrent_chats(live: Live) -> None:
    alice = await live.register()
    results: list[int] = []

    async def chat(i: int) -> None:
        c = await alice.character(f"C{i}")
        r = await alice.request("POST", f"/api/characters/{c['id']}/chat", json={"content": "hey"})
        results.append(r.status_code)

    async with trio.open_nursery() as nursery:
        for i in range(10):
            nursery.start_soon(chat, i)
    assert results == [200] * 10
