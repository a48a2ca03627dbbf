"""Following a generation (`GET …/chat/stream`, `GET /api/groups/{id}/stream`), resuming with
`Last-Event-ID`: in one process from the run's log, across processes through Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from app.services.events import ID_SPAN, split_event_id
from tests.app.harness import (
    SSE,
    Live,
    Numbered,
    Session,
    delta_text,
    live_server,
    make_settings,
    until_deltas,
)
from tests.redisutil import REDIS_URL, own_redis, redis_prefix

# A paced reply: 240 chunks at 60/s (4 s), so a follower joins while it streams, also one on
# another process on a loaded machine (at 30 chunks, half a second, a CI run once saw it
# already ended: 204).
PACED = "[[fake:tps=60]][[fake:tokens=240]] hello"


async def _rest(sse: SSE) -> list[Numbered]:
    return [event async for event in sse]


async def _follow(
    session: Session, path: str, last_id: int | None = None
) -> tuple[int, list[Numbered]]:
    headers = {} if last_id is None else {"Last-Event-ID": str(last_id)}
    async with session.stream(path, method="GET", headers=headers) as sse:
        if sse.response.status_code != 200:
            return sse.response.status_code, []
        assert sse.response.headers["content-type"].startswith("text/event-stream")
        return 200, await _rest(sse)


def _names(events: list[Numbered]) -> list[str]:
    """The events' names, deltas left out (followers may merge deltas differently)."""
    return [name for _, name, _ in events if name != "delta"]


def _increasing(events: list[Numbered]) -> None:
    ids = [event_id for event_id, _, _ in events]
    assert ids == sorted(set(ids)), ids


async def test_follow_and_resume_a_chat_reply_in_one_process(live: Live) -> None:
    alice = await live.register()
    mira = await alice.character()
    chat = f"/api/characters/{mira['id']}/chat"
    assert (await _follow(alice, f"{chat}/stream"))[0] == 204  # nothing runs yet

    async with alice.stream(chat, {"content": PACED}) as sse:
        head = await until_deltas(sse, 3)
        last_id = head[-1][0]
        generation_id, index = split_event_id(last_id)
        assert generation_id > 0 and 0 < index < ID_SPAN
        # a follower from the start and one resuming after `last_id`, while it streams
        whole, resumed = await _both(
            _follow(alice, f"{chat}/stream"), _follow(alice, f"{chat}/stream", last_id)
        )
        original = head + await _rest(sse)
    for status, events in (whole, resumed):
        assert status == 200
        _increasing(events)
        assert events[-1][1] == "done"
    _increasing(original)
    # the follower from the start saw what the sender saw; the resumed one exactly the rest
    assert delta_text(whole[1]) == delta_text(original)
    assert _names(whole[1]) == _names(original)
    assert resumed[1][0][0] > last_id
    assert delta_text(head) + delta_text(resumed[1]) == delta_text(original)
    assert _names(resumed[1]) == ["reply", "done"]
    reply = next(data for _, name, data in original if name == "reply")
    assert reply["content"] == delta_text(original) and reply["status"] == "complete"
    # ids are the same wherever read: the ids after `last_id` are the sender's
    assert {i for i, _, _ in resumed[1]} <= {i for i, _, _ in original}

    # ended: a new follower has nothing to follow; a resuming one gets what it missed
    assert (await _follow(alice, f"{chat}/stream"))[0] == 204
    status, late = await _follow(alice, f"{chat}/stream", last_id)
    assert status == 200 and delta_text(head) + delta_text(late) == delta_text(original)
    assert (await _follow(alice, f"{chat}/stream", original[-1][0]))[0] == 204


async def test_follow_rejects_what_is_not_ours(live: Live) -> None:
    alice = await live.register()
    bob = await live.register("bob")
    mira = await alice.character()
    path = f"/api/characters/{mira['id']}/chat/stream"
    r = await alice.request("GET", path, headers={"Last-Event-ID": "12abc"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    assert (await bob.request("GET", path)).status_code == 404
    assert (await alice.request("GET", "/api/groups/999999/stream")).status_code == 404
    assert (await live.client.get(path)).status_code == 401


async def test_follow_a_group_turn(live: Live) -> None:
    alice = await live.register()
    a = await alice.character("Ann")
    b = await alice.character("Bo")
    group = await alice.group("g", [a, b])
    path = f"/api/groups/{group['id']}"
    async with alice.stream(f"{path}/messages", {"content": PACED}) as sse:
        head = await until_deltas(sse, 2)
        status, rest = await _follow(alice, f"{path}/stream", head[-1][0])
        original = head + await _rest(sse)
    assert status == 200 and rest[-1][1] == "done"
    _increasing(rest)
    by_speaker: dict[int, str] = {}
    for _, name, data in head + rest:
        if name == "delta":
            speaker = data["character_id"]
            by_speaker[speaker] = by_speaker.get(speaker, "") + data["text"]
    replies = {d["character_id"]: d["content"] for _, n, d in original if n == "reply"}
    assert by_speaker == replies and set(replies) == {a["id"], b["id"]}


@asynccontextmanager
async def _two_processes(db_url: str, fake_url: str) -> AsyncIterator[tuple[Live, Live]]:
    """Two app instances sharing the database and one Redis prefix: two processes of one
    service, as far as the service can tell."""
    async with redis_prefix() as prefix:
        settings = {"redis_url": REDIS_URL, "redis_prefix": prefix}
        async with (
            live_server(make_settings(db_url, fake_url, **settings)) as a,
            live_server(make_settings(db_url, fake_url, **settings)) as b,
        ):
            yield a, b


async def test_follow_a_reply_running_in_another_process(db_url: str, fake: Any) -> None:
    async with _two_processes(db_url, fake.base_url) as (a, b):
        alice_a = await a.register()
        alice_b = Session(b, alice_a.token, alice_a.user)
        mira = await alice_a.character()
        chat = f"/api/characters/{mira['id']}/chat"
        async with alice_a.stream(chat, {"content": PACED}) as sse:
            head = await until_deltas(sse, 3)
            whole, resumed = await _both(
                _follow(alice_b, f"{chat}/stream"),
                _follow(alice_b, f"{chat}/stream", head[-1][0]),
            )
            original = head + await _rest(sse)
        for status, events in (whole, resumed):
            assert status == 200 and events[-1][1] == "done"
            _increasing(events)
        assert delta_text(whole[1]) == delta_text(original)
        assert delta_text(head) + delta_text(resumed[1]) == delta_text(original)
        # the same ids on both processes: every id B sent is one A sent, or merges A's deltas
        sent_by_a = {i for i, _, _ in original}
        assert [i for i, n, _ in whole[1] if n != "delta"] == [
            i for i, n, _ in original if n != "delta"
        ]
        assert all(i <= max(sent_by_a) for i, _, _ in whole[1])
        # ended: B still serves the missed rest from Redis, and nothing to a new follower
        status, late = await _follow(alice_b, f"{chat}/stream", head[-1][0])
        assert status == 200 and delta_text(head) + delta_text(late) == delta_text(original)
        assert (await _follow(alice_b, f"{chat}/stream"))[0] == 204
        ready = (await b.client.get("/readyz")).json()
        assert ready["status"] == "ready" and ready["checks"]["redis"] == "ok"


async def _both(first: Any, second: Any) -> tuple[Any, Any]:
    results: list[Any] = [None, None]

    async def run(i: int, awaitable: Any) -> None:
        results[i] = await awaitable

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, 0, first)
            nursery.start_soon(run, 1, second)
    return results[0], results[1]


async def _readiness(live: Live, status: str) -> None:
    """Wait until the process's Redis link is up (`ready`) or down (`degraded`), then check
    that /readyz says so (the link is pinged every half second while down)."""
    link = live.services.redis
    with trio.fail_after(15):
        while link.up != (status == "ready"):
            await link.wait_changed()
    assert (await live.client.get("/readyz")).json()["status"] == status


async def test_redis_lost_mid_reply(db_url: str, fake: Any, tmp_path: Path) -> None:
    """The reply completes and is stored; a follower on another process gets `error`
    `events_unavailable`, /readyz says degraded, and once Redis is back (empty: it keeps
    nothing) the follower can follow again and gets the whole reply."""
    async with own_redis(tmp_path) as redis:
        settings = {"redis_url": redis.url, "redis_prefix": "lost"}
        async with (
            live_server(make_settings(db_url, fake.base_url, **settings)) as a,
            live_server(make_settings(db_url, fake.base_url, **settings)) as b,
        ):
            alice_a = await a.register()
            alice_b = Session(b, alice_a.token, alice_a.user)
            mira = await alice_a.character()
            chat = f"/api/characters/{mira['id']}/chat"
            long = "[[fake:tps=40]][[fake:tokens=300]] hi"
            with trio.fail_after(30):
                async with alice_a.stream(chat, {"content": long}) as on_a:
                    head = await until_deltas(on_a, 2)
                    async with alice_b.stream(f"{chat}/stream", method="GET") as follower:
                        await until_deltas(follower, 2)
                        await redis.stop()
                        cut = await _rest(follower)
                    assert cut[-1][1] == "error"
                    assert cut[-1][2]["code"] == "events_unavailable"
                    await _readiness(a, "degraded")
                    assert (await a.client.get("/readyz")).json()["checks"]["redis"] == (
                        "unavailable"
                    )
                    await redis.start()
                    await _readiness(b, "ready")
                    status, again = await _follow(alice_b, f"{chat}/stream")
                    original = head + await _rest(on_a)
            assert original[-1][1] == "done"
            assert status == 200 and again[-1][1] == "done"
            assert delta_text(again) == delta_text(original)
            page = (await alice_a.request("GET", f"{chat}/messages")).json()
            assert page["items"][-1]["content"] == delta_text(original)
            assert page["items"][-1]["status"] == "complete"
