"""memories: the compression transaction and long-term merges."""

from __future__ import annotations

import trio

from storage import Database, groups, memories, messages

from .helpers import make_character, make_direct, make_user


async def test_compression_never_marks_a_message_inserted_meanwhile(db: Database) -> None:
    _, _, conv = await make_direct(db)
    for i in range(10):
        await db.write(messages.add_message, conv.id, "user", f"m{i}")
    batch = await db.read(messages.oldest_uncompressed, conv.id, keep_recent=2)
    upto = batch[-1].id
    # While the summary is being written, the conversation goes on.
    late = await db.write(messages.add_message, conv.id, "user", "arrived meanwhile")

    marked = await db.write(
        memories.apply_compression,
        conv.id,
        upto_message_id=upto,
        summaries={None: [("first eight", 5), ("a detail", 2)]},
    )

    assert marked == 8
    page = await db.read(messages.list_messages, conv.id, limit=50, before=None)
    assert [m.compressed for m in page.items] == [True] * 8 + [False] * 3
    assert await db.read(messages.get_message, late.id) == late  # untouched
    assert await db.read(messages.count_uncompressed, conv.id) == 3
    stored = await db.read(memories.list_memories, conv.id)
    assert [(m.kind, m.content, m.importance, m.character_id) for m in stored] == [
        ("short_term", "first eight", 5, None),
        ("short_term", "a detail", 2, None),
    ]


async def test_compression_concurrent_with_inserts(db: Database) -> None:
    _, _, conv = await make_direct(db)
    for i in range(20):
        await db.write(messages.add_message, conv.id, "user", f"m{i}")
    upto = (await db.read(messages.oldest_uncompressed, conv.id, keep_recent=5))[-1].id
    marked: list[int] = []

    async def compress() -> None:
        marked.append(
            await db.write(
                memories.apply_compression,
                conv.id,
                upto_message_id=upto,
                summaries={None: [("summary", 1)]},
            )
        )

    async def chat(n: int) -> None:
        await db.write(messages.add_message, conv.id, "user", f"late{n}")

    async with trio.open_nursery() as nursery:
        for n in range(10):
            nursery.start_soon(chat, n)
        nursery.start_soon(compress)
        nursery.start_soon(compress)  # a duplicated job must not double-count

    assert sorted(marked) == [0, 15]
    page = await db.read(messages.list_messages, conv.id, limit=100, before=None)
    assert len(page.items) == 30
    assert all(m.compressed == (m.id <= upto) for m in page.items)
    assert [m.content for m in await db.read(memories.list_memories, conv.id)] == ["summary"]


async def test_group_memories_per_character_and_long_term_merge(db: Database) -> None:
    user = await make_user(db)
    a = await make_character(db, user, "A")
    b = await make_character(db, user, "B")
    group = await db.write(
        groups.create_group, user.id, "g", [a.id, b.id], strategy="all", max_speakers=2
    )
    conv_id = group.conversation_id
    first = await db.write(messages.add_message, conv_id, "user", "hello both")
    await db.write(
        memories.apply_compression,
        conv_id,
        upto_message_id=first.id,
        summaries={a.id: [("a1", 1), ("a2", 2)], b.id: [("b1", 3)]},
    )
    second = await db.write(messages.add_message, conv_id, "user", "again")
    await db.write(
        memories.apply_compression,
        conv_id,
        upto_message_id=second.id,
        summaries={a.id: [("a3", 1)]},
    )
    a_short = await db.read(memories.list_memories, conv_id, character_id=a.id)
    assert [m.content for m in a_short] == ["a1", "a2", "a3"]
    assert all(m.character_id == a.id for m in a_short)
    assert await db.read(memories.list_memories, conv_id) == []  # no character-less rows

    await db.write(
        memories.replace_with_long_term,
        conv_id,
        character_id=a.id,
        remove_ids=[m.id for m in a_short[:2]],
        long_term=[("a1+a2", 4)],
    )
    merged = await db.read(memories.list_memories, conv_id, character_id=a.id)
    assert [(m.kind, m.content) for m in merged] == [("long_term", "a1+a2"), ("short_term", "a3")]

    # Merging again replaces the old long-term row too; other characters are untouched.
    await db.write(
        memories.replace_with_long_term,
        conv_id,
        character_id=a.id,
        remove_ids=[m.id for m in merged]
        + [m.id for m in await db.read(memories.list_memories, conv_id, character_id=b.id)],
        long_term=[("everything A knows", 5)],
    )
    final_a = await db.read(memories.list_memories, conv_id, character_id=a.id)
    assert [(m.kind, m.content) for m in final_a] == [("long_term", "everything A knows")]
    every = await db.read(memories.list_memories, conv_id, all_characters=True)
    assert sorted(m.content for m in every) == ["b1", "everything A knows"]


async def test_direct_long_term_first_then_short_term(db: Database) -> None:
    _, _, conv = await make_direct(db)
    for i in range(3):
        message = await db.write(messages.add_message, conv.id, "user", f"m{i}")
        await db.write(
            memories.apply_compression,
            conv.id,
            upto_message_id=message.id,
            summaries={None: [(f"s{i}", i)]},
        )
    shorts = await db.read(memories.list_memories, conv.id)
    await db.write(
        memories.replace_with_long_term,
        conv.id,
        character_id=None,
        remove_ids=[shorts[0].id],
        long_term=[("l0", 9)],
    )
    listed = await db.read(memories.list_memories, conv.id)
    assert [(m.kind, m.content) for m in listed] == [
        ("long_term", "l0"),
        ("short_term", "s1"),
        ("short_term", "s2"),
    ]
    assert listed[0].created_at.tzinfo is not None


async def test_users_memories_are_never_merged_nor_dropped_when_stale(db: Database) -> None:
    from datetime import UTC, datetime

    from storage import tree

    _, _, conv = await make_direct(db)
    sent = [await db.write(messages.add_message, conv.id, "user", f"m{i}") for i in range(6)]
    for part in (sent[:2], sent[2:4]):
        await db.write(
            memories.apply_compression,
            conv.id,
            upto_message_id=part[-1].id,
            summaries={None: [(f"about {part[0].content}", 3)]},
            message_ids=[m.id for m in part],
        )
    first, second = await db.read(memories.list_memories, conv.id)
    now = datetime.now(UTC)
    edited = await db.write(
        memories.update_memory, conv.id, second.id, now=now, content="corrected"
    )
    assert edited is not None and edited.edited_at == now and edited.protected
    written = await db.write(
        memories.add_memory,
        conv.id,
        character_id=None,
        content="the user's own",
        importance=4,
        pinned=True,
    )
    assert (written.origin, written.pinned, written.kind) == ("user", True, "long_term")

    # a merge that names a user's memory changes nothing
    merged = await db.write(
        memories.replace_with_long_term,
        conv.id,
        character_id=None,
        remove_ids=[first.id, second.id],
        long_term=[("merged", 5)],
    )
    assert merged is False
    assert await db.read(memories.list_memories, conv.id) == [written, first, edited]

    # a message of the first memory is edited: the compressed one is dropped, the corrected
    # one kept (no longer tied to messages), and every message is uncompressed again
    await db.write(tree.edit_message, conv.id, sent[0].id, "changed", now=datetime.now(UTC))
    assert await db.write(memories.invalidate_stale, conv.id) == [first.id]
    assert await db.read(memories.list_memories, conv.id) == [written, edited]
    assert await db.read(memories.summarised_message_ids, second.id) == []
    assert await db.read(messages.count_uncompressed, conv.id) == 6

    assert await db.write(memories.delete_memory, conv.id, written.id) is True
    assert await db.write(memories.delete_memory, conv.id, written.id) is False
    assert await db.read(memories.get_memory, conv.id + 1, second.id) is None
