"""The one generation lifecycle: a generation that has ended in the database has ended in the
process too, so the next message is never refused or answered with a 500 while the previous
reply's follow-up work (memory scheduling) still runs; a shutdown never reports `done`."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
import trio

from app.services.runs import Run, RunRegistry
from tests.app.harness import Live, Session


class _SlowFollowUp:
    """Holds `MemoryService.maybe_schedule` (the work after a reply is saved) until released."""

    def __init__(self, live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
        memory = live.services.memory
        self.entered = trio.Event()
        self.release = trio.Event()
        original = memory.maybe_schedule

        async def slow(*args: Any, **kwargs: Any) -> bool:
            self.entered.set()
            await self.release.wait()
            return bool(await original(*args, **kwargs))

        monkeypatch.setattr(memory, "maybe_schedule", slow)


async def _accepted(alice: Session, path: str, content: str) -> str:
    """Send `content` as a stream and return the name of its first event (`user_message` when
    accepted); the rest of that stream is left to run."""
    async with alice.stream(path, {"content": content}) as sse:
        async for _, name, _ in sse:
            return name
    raise AssertionError("the stream ended without an event")


async def test_chat_send_right_after_the_reply_is_accepted(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = _SlowFollowUp(live, monkeypatch)
    alice = await live.register()
    mira = await alice.character("Mira")
    path = f"/api/characters/{mira['id']}/chat"
    names: list[str] = []
    async with alice.stream(path, {"content": "first"}) as sse:
        async for _, name, _ in sse:
            names.append(name)
            if name == "reply":
                # the reply is saved; its follow-up work is held: the next message is accepted
                with trio.fail_after(10):
                    await held.entered.wait()
                assert await _accepted(alice, path, "right after") == "user_message"
                held.release.set()
    assert names[-2:] == ["reply", "done"]
    with trio.fail_after(20):
        await live.services.runs.wait_idle()
    history = await alice.request("GET", f"{path}/messages")
    contents = [(m["role"], m["status"]) for m in history.json()["items"]]
    assert contents == [("user", "complete"), ("assistant", "complete")] * 2


async def test_group_send_right_after_the_replies_is_accepted(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = _SlowFollowUp(live, monkeypatch)
    alice = await live.register()
    a, b = await alice.character("Ann"), await alice.character("Bob")
    path = f"/api/groups/{(await alice.group('G', [a, b]))['id']}/messages"
    names: list[str] = []
    async with alice.stream(path, {"content": "hello both"}) as sse:
        async for _, name, _ in sse:
            names.append(name)
            if name == "reply" and names.count("reply") == 2:
                # both replies saved; the turn's follow-up is held: the next one is accepted
                with trio.fail_after(10):
                    await held.entered.wait()
                assert await _accepted(alice, path, "again") == "user_message"
                held.release.set()
    assert names[-1] == "done"


async def test_stop_is_false_once_the_generation_has_ended(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = _SlowFollowUp(live, monkeypatch)
    alice = await live.register()
    mira = await alice.character("Mira")
    path = f"/api/characters/{mira['id']}/chat"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(alice.request, "POST", path, json={"content": "x"}))
        with trio.fail_after(10):
            await held.entered.wait()
        # the reply is saved and its generation ended; only the follow-up runs
        r = await alice.request("POST", f"{path}/stop")
        assert r.status_code == 200 and r.json() == {"stopped": False}
        held.release.set()


async def test_clear_conflicts_only_while_a_generation_runs(live: Live) -> None:
    alice = await live.register()
    mira = await alice.character("Mira")
    path = f"/api/characters/{mira['id']}/chat"
    async with alice.stream(path, {"content": "slow [[fake:ttft=30]]"}) as sse:
        async for _, name, _ in sse:
            if name == "user_message":
                break
        r = await alice.request("DELETE", path)
        assert r.status_code == 409 and r.json()["error"]["code"] == "generation_in_progress"
        r = await alice.request("POST", f"{path}/stop")
        assert r.json() == {"stopped": True}
        rest = [name async for _, name, _ in sse]
    assert rest[-1] == "done"
    r = await alice.request("DELETE", path)
    assert r.status_code == 204, r.text


async def test_a_run_cancelled_from_outside_never_reports_done() -> None:
    """Cancelling the service nursery (what the shutdown deadline does) ends the run's events
    with `shutting_down`, not `done`."""
    released = trio.Event()

    async def body(run: Run) -> dict[str, Any]:
        released.set()
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async with trio.open_nursery() as nursery:
        runs = RunRegistry(nursery)
        run = runs.start(("test", 1), body)
        await released.wait()
        nursery.cancel_scope.cancel()
    assert run.finished.is_set()
    name, data = run.events.events[-1]
    assert name == "error" and data["code"] == "shutting_down"
