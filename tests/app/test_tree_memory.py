"""Memories and the conversation tree over HTTP: an edit or a branch switch drops the
memories that no longer match the active path, and compression rebuilds them."""

from __future__ import annotations

from typing import Any

from storage import conversations, messages
from tests.app.test_memory import chat, history, idle, memories, server, summary_requests


async def test_edit_of_a_compressed_message_rebuilds_its_memory(db_url: str, fake: Any) -> None:
    async with server(db_url, fake) as live:
        alice = await live.register()
        mira = await alice.character("Mira")
        for i in range(3):
            await chat(alice, mira["id"], f"fact number {i}")
        await idle(live)
        old = await memories(alice, mira["id"])
        items = await history(alice, mira["id"])
        assert old and items[0]["compressed"]
        r = await alice.request(
            "PATCH",
            f"/api/characters/{mira['id']}/chat/messages/{items[0]['id']}",
            json={"content": "fact number zero, corrected"},
        )
        assert r.status_code == 200, r.text
        await idle(live)
        new = await memories(alice, mira["id"])
        assert new and {m["id"] for m in new}.isdisjoint({m["id"] for m in old})
        transcript = summary_requests(fake)[-1].messages[-1]["content"]
        assert "fact number zero, corrected" in transcript
        stale = [m["content"] for m in old if m["content"] not in {n["content"] for n in new}]
        assert stale  # the rebuilt summary differs from the stale one
        since = len(fake.requests)
        await chat(alice, mira["id"], "do you remember?")
        system = fake.requests[since].messages[0]["content"]
        assert all(content not in system for content in stale)
        assert all(m["content"] in system for m in new)


async def test_switching_branch_leaves_the_other_branch_memories_out(
    db_url: str, fake: Any
) -> None:
    async with server(db_url, fake) as live:
        alice = await live.register()
        mira = await alice.character("Mira")
        for i in range(3):
            await chat(alice, mira["id"], f"fact number {i}")
        await idle(live)
        old = await memories(alice, mira["id"])
        items = await history(alice, mira["id"])
        assert old
        # an alternative of the first reply, as regenerate makes it: another branch
        db = live.services.db
        conv = await db.read(conversations.get_direct, int(alice.user["id"]), int(mira["id"]))
        await db.write(
            messages.add_message,
            conv.id,
            "assistant",
            "another answer",
            character_id=int(mira["id"]),
            parent_id=int(items[0]["id"]),
        )
        assert await memories(alice, mira["id"]) == []
        since = len(fake.requests)
        await chat(alice, mira["id"], "and now?")
        system = fake.requests[since].messages[0]["content"]
        assert all(m["content"] not in system for m in old)
        sent = [m["content"] for m in fake.requests[since].messages[1:]]
        assert sent[:2] == ["fact number 0", "another answer"]
        # back to the first branch: its messages are history again, and get compressed anew
        r = await alice.request(
            "POST", f"/api/characters/{mira['id']}/chat/messages/{items[1]['id']}/select"
        )
        assert r.status_code == 200, r.text
        assert [m["id"] for m in r.json()["items"]] == [m["id"] for m in items]
        await idle(live)
        rebuilt = await memories(alice, mira["id"])
        assert rebuilt and all(m["kind"] == "short_term" for m in rebuilt)
        assert (await history(alice, mira["id"]))[0]["compressed"]
