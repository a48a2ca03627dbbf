"""conversations and messages: pagination, uncompressed windows, 50 concurrent writers."""

from __future__ import annotations

import pytest
import trio

from storage import Database, InvalidReference, conversations, messages, open_database
from storage.records import Message

from .helpers import make_character, make_direct, make_user


async def _fill(db: Database, conversation_id: int, n: int) -> list[Message]:
    return [
        await db.write(
            messages.add_message,
            conversation_id,
            "user" if i % 2 == 0 else "assistant",
            f"m{i}",
        )
        for i in range(n)
    ]


async def test_direct_conversation_is_unique_per_user_and_character(db: Database) -> None:
    user, character, conv = await make_direct(db)
    assert conv.kind == "direct" and conv.character_id == character.id and conv.group_id is None
    assert await db.write(conversations.get_or_create_direct, user.id, character.id) == conv
    assert await db.read(conversations.get_direct, user.id, character.id) == conv
    other = await make_character(db, user, "Other")
    assert await db.read(conversations.get_direct, user.id, other.id) is None
    assert await db.read(conversations.get_conversation, conv.id + 1000) is None


async def test_concurrent_get_or_create_direct_yields_one_conversation(db: Database) -> None:
    user = await make_user(db)
    character = await make_character(db, user)
    seen: set[int] = set()

    async def get() -> None:
        conv = await db.write(conversations.get_or_create_direct, user.id, character.id)
        seen.add(conv.id)

    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(get)
    assert len(seen) == 1


async def test_pagination_before_is_exclusive(db: Database) -> None:
    user, _, conv = await make_direct(db)
    noise = await make_character(db, user, "Noise")
    noise_conv = await db.write(conversations.get_or_create_direct, user.id, noise.id)
    sent = []
    for i in range(7):
        sent.append(await db.write(messages.add_message, conv.id, "user", f"m{i}"))
        await db.write(messages.add_message, noise_conv.id, "user", "elsewhere")
    ids = [m.id for m in sent]
    assert ids == sorted(ids) and len(set(ids)) == 7

    page = await db.read(messages.list_messages, conv.id, limit=3, before=None)
    assert [m.id for m in page.items] == ids[4:7] and page.next_before == ids[4]
    page = await db.read(messages.list_messages, conv.id, limit=3, before=page.next_before)
    assert [m.id for m in page.items] == ids[1:4] and page.next_before == ids[1]
    page = await db.read(messages.list_messages, conv.id, limit=3, before=page.next_before)
    assert [m.id for m in page.items] == ids[0:1] and page.next_before is None

    # Exactly `limit` older messages left: no further page.
    page = await db.read(messages.list_messages, conv.id, limit=3, before=ids[3])
    assert [m.id for m in page.items] == ids[0:3] and page.next_before is None
    page = await db.read(messages.list_messages, conv.id, limit=50, before=None)
    assert page.items == sent and page.next_before is None
    empty = await db.read(messages.list_messages, conv.id, limit=5, before=ids[0])
    assert empty.items == [] and empty.next_before is None


async def test_pagination_before_must_name_a_message_of_the_conversation(db: Database) -> None:
    user, _, conv = await make_direct(db)
    mine = await db.write(messages.add_message, conv.id, "user", "mine")
    other = await make_character(db, user, "Other")
    other_conv = await db.write(conversations.get_or_create_direct, user.id, other.id)
    theirs = await db.write(messages.add_message, other_conv.id, "user", "theirs")
    for before in (theirs.id, theirs.id + 1000):
        with pytest.raises(InvalidReference):
            await db.read(messages.list_messages, conv.id, limit=5, before=before)
    page = await db.read(messages.list_messages, conv.id, limit=5, before=mine.id)
    assert page.items == []


async def test_uncompressed_windows_and_lookups(db: Database) -> None:
    _, character, conv = await make_direct(db)
    sent = await _fill(db, conv.id, 6)
    ids = [m.id for m in sent]
    assert await db.read(messages.count_uncompressed, conv.id) == 6
    recent = await db.read(messages.recent_uncompressed, conv.id, limit=4)
    assert [m.id for m in recent] == ids[2:]
    turns = await db.read(messages.recent_turns, conv.id, limit=4)
    assert turns == [(m.role, m.content, m.status) for m in recent]
    upto = await db.read(messages.recent_turns, conv.id, limit=9, upto=ids[2])
    assert [t.content for t in upto] == ["m0", "m1", "m2"]
    oldest = await db.read(messages.oldest_uncompressed, conv.id, keep_recent=2)
    assert [m.id for m in oldest] == ids[:4]
    assert await db.read(messages.oldest_uncompressed, conv.id, keep_recent=6) == []
    assert await db.read(messages.oldest_uncompressed, conv.id, keep_recent=0) == sent

    last = await db.read(messages.last_assistant_message, conv.id)
    assert last == sent[5]
    assert await db.read(messages.get_message, ids[0]) == sent[0]
    await db.write(messages.delete_message, ids[5])
    assert await db.read(messages.get_message, ids[5]) is None
    assert await db.read(messages.last_assistant_message, conv.id) == sent[3]

    streaming = await db.write(
        messages.add_message,
        conv.id,
        "assistant",
        "",
        character_id=character.id,
        status="streaming",
    )
    done = await db.write(
        messages.update_message, streaming.id, content="full text", status="interrupted"
    )
    assert done is not None and (done.content, done.status) == ("full text", "interrupted")
    # A deleted newest id is never reused: ids keep increasing.
    assert streaming.id > ids[5]

    await db.write(conversations.clear_conversation, conv.id)
    assert await db.read(messages.count_uncompressed, conv.id) == 0
    assert await db.read(messages.last_assistant_message, conv.id) is None
    assert await db.read(conversations.get_conversation, conv.id) == conv


async def test_fifty_concurrent_writers_across_two_engines(db: Database) -> None:
    """Writers on two separate engines (as two processes would be) never see "locked"."""
    _, _, conv = await make_direct(db)
    writers, per_writer = 50, 2

    async with open_database(db.url, migrate=False) as second:

        async def writer(target: Database, n: int) -> None:
            for i in range(per_writer):
                await target.write(messages.add_message, conv.id, "user", f"w{n}-{i}")
                await target.read(messages.list_messages, conv.id, limit=50, before=None)

        async with trio.open_nursery() as nursery:
            for n in range(writers):
                nursery.start_soon(writer, db if n % 2 else second, n)

    page = await db.read(messages.list_messages, conv.id, limit=500, before=None)
    contents = sorted(m.content for m in page.items)
    assert contents == sorted(f"w{n}-{i}" for n in range(writers) for i in range(per_writer))
    ids = [m.id for m in page.items]
    assert ids == sorted(set(ids))
