"""Conversation trees in storage: appends, alternatives, select, edit, subtree delete, memories."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import trio

from storage import Database, InvalidReference, memories, messages, open_database, tree
from storage.records import Message

from .helpers import make_direct


async def _chain(db: Database, conversation_id: int, n: int, prefix: str = "m") -> list[Message]:
    return [
        await db.write(
            messages.add_message,
            conversation_id,
            "user" if i % 2 == 0 else "assistant",
            f"{prefix}{i}",
        )
        for i in range(n)
    ]


async def _path(db: Database, conversation_id: int) -> list[str]:
    return [m.content for m in await db.read(messages.active_path, conversation_id)]


async def test_appends_chain_and_alternatives_are_siblings(db: Database) -> None:
    _, _, conv = await make_direct(db)
    sent = await _chain(db, conv.id, 4)
    assert [m.parent_id for m in sent] == [None, sent[0].id, sent[1].id, sent[2].id]
    # three alternatives of the last reply, made as regenerate will make them
    alt1 = await db.write(
        messages.add_message, conv.id, "assistant", "alt1", parent_id=sent[2].id, model="x/y"
    )
    alt2 = await db.write(messages.add_message, conv.id, "assistant", "alt2", parent_id=sent[2].id)
    assert (alt1.sibling_index, alt1.sibling_count, alt1.model) == (1, 2, "x/y")
    assert (alt2.sibling_index, alt2.sibling_count) == (2, 3)
    assert await _path(db, conv.id) == ["m0", "m1", "m2", "alt2"]
    page = await db.read(messages.list_messages, conv.id, limit=50, before=None)
    assert [(m.sibling_index, m.sibling_count) for m in page.items][-1] == (2, 3)
    last = await db.read(messages.last_assistant_message, conv.id)
    assert last is not None and last.id == alt2.id
    upto = await db.read(messages.recent_uncompressed, conv.id, limit=2, upto=sent[1].id)
    assert [m.content for m in upto] == ["m0", "m1"]

    leaf = await db.write(tree.select_message, conv.id, sent[3].id)
    assert leaf == sent[3].id
    assert await _path(db, conv.id) == ["m0", "m1", "m2", "m3"]
    await db.write(tree.select_message, conv.id, alt1.id)
    assert await _path(db, conv.id) == ["m0", "m1", "m2", "alt1"]
    # the next message appends to the selected alternative
    after = await db.write(messages.add_message, conv.id, "user", "next")
    assert after.parent_id == alt1.id


async def test_select_walks_down_by_last_active_child(db: Database) -> None:
    _, _, conv = await make_direct(db)
    original = await _chain(db, conv.id, 10)
    # branch from the first message: a new root, then a reply under it
    branch = await db.write(messages.add_message, conv.id, "user", "b0", parent_id=None)
    await db.write(messages.add_message, conv.id, "assistant", "b1")
    assert await _path(db, conv.id) == ["b0", "b1"]
    assert (branch.sibling_index, branch.sibling_count) == (1, 2)
    # select the first message back: the original ten are the active path again
    await db.write(tree.select_message, conv.id, original[0].id)
    assert await _path(db, conv.id) == [m.content for m in original]
    # select a middle message of a path: walks down to that path's leaf
    await db.write(tree.select_message, conv.id, branch.id)
    assert await _path(db, conv.id) == ["b0", "b1"]
    await db.write(tree.select_message, conv.id, original[4].id)
    assert await _path(db, conv.id) == [m.content for m in original]


async def test_pagination_follows_the_active_path(db: Database) -> None:
    _, _, conv = await make_direct(db)
    trunk = await _chain(db, conv.id, 6)
    side = await db.write(messages.add_message, conv.id, "assistant", "side", parent_id=trunk[2].id)
    await _chain(db, conv.id, 3, prefix="s")  # continues the side branch
    page = await db.read(messages.list_messages, conv.id, limit=3, before=None)
    assert [m.content for m in page.items] == ["s0", "s1", "s2"]
    page = await db.read(messages.list_messages, conv.id, limit=3, before=page.next_before)
    assert [m.content for m in page.items] == ["m1", "m2", "side"] and page.next_before
    page = await db.read(messages.list_messages, conv.id, limit=3, before=page.next_before)
    assert [m.content for m in page.items] == ["m0"] and page.next_before is None
    assert side.parent_id == trunk[2].id
    # a `before` of another conversation names nothing here
    with pytest.raises(InvalidReference):
        await db.read(messages.list_messages, conv.id + 99, limit=3, before=side.id)


async def test_delete_moves_the_active_path(db: Database) -> None:
    _, _, conv = await make_direct(db)
    trunk = await _chain(db, conv.id, 3)
    a = await db.write(messages.add_message, conv.id, "assistant", "a", parent_id=trunk[1].id)
    b = await db.write(messages.add_message, conv.id, "assistant", "b", parent_id=trunk[1].id)
    await db.write(messages.add_message, conv.id, "user", "under b")
    # most recently active: b, then a (selected after b was made), so order: a > b > m2
    await db.write(tree.select_message, conv.id, a.id)
    await db.write(tree.select_message, conv.id, b.id)
    assert await _path(db, conv.id) == ["m0", "m1", "b", "under b"]
    deleted = await db.write(tree.delete_subtree, conv.id, b.id)
    assert sorted(deleted) == sorted([b.id, b.id + 1])
    # the parent's most recently active remaining child: a
    assert await _path(db, conv.id) == ["m0", "m1", "a"]
    await db.write(tree.delete_subtree, conv.id, a.id)
    assert await _path(db, conv.id) == ["m0", "m1", "m2"]
    # a message off the active path: the path does not move
    off = await db.write(messages.add_message, conv.id, "user", "off", parent_id=trunk[0].id)
    await db.write(tree.select_message, conv.id, trunk[2].id)
    await db.write(tree.delete_subtree, conv.id, off.id)
    assert await _path(db, conv.id) == ["m0", "m1", "m2"]
    # deleting the last child leaves the path ending at the parent
    await db.write(tree.delete_subtree, conv.id, trunk[1].id)
    assert await _path(db, conv.id) == ["m0"]
    await db.write(tree.delete_subtree, conv.id, trunk[0].id)
    assert await _path(db, conv.id) == [] and await db.read(tree.active_leaf, conv.id) is None
    with pytest.raises(tree.TreeError):
        await db.write(tree.delete_subtree, conv.id, trunk[0].id)


async def test_edit_in_place(db: Database) -> None:
    _, _, conv = await make_direct(db)
    sent = await _chain(db, conv.id, 2)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    edited = await db.write(tree.edit_message, conv.id, sent[0].id, "fixed", now=now)
    assert (edited.id, edited.content, edited.edited_at) == (sent[0].id, "fixed", now)
    assert await _path(db, conv.id) == ["fixed", "m1"]
    _, _, other = await make_direct(db, "bob")
    with pytest.raises(tree.TreeError):
        await db.write(tree.edit_message, other.id, sent[0].id, "x", now=now)
    with pytest.raises(tree.TreeError):
        await db.write(tree.select_message, other.id, sent[0].id)


async def _compress(db: Database, conversation_id: int, ids: list[int], text: str) -> None:
    marked = await db.write(
        memories.apply_compression,
        conversation_id,
        upto_message_id=ids[-1],
        summaries={None: [(text, 3)]},
        message_ids=ids,
    )
    assert marked == len(ids)


async def test_memories_record_messages_and_go_stale(db: Database) -> None:
    _, _, conv = await make_direct(db)
    sent = await _chain(db, conv.id, 6)
    other = await db.write(
        messages.add_message, conv.id, "assistant", "other", parent_id=sent[0].id
    )
    await db.write(tree.select_message, conv.id, sent[5].id)
    pending = await db.read(messages.oldest_uncompressed, conv.id, keep_recent=2)
    assert [m.id for m in pending] == [m.id for m in sent[:4]]
    await _compress(db, conv.id, [m.id for m in pending], "summary of four")
    (memory,) = await db.read(memories.list_memories, conv.id)
    assert await db.read(memories.summarised_message_ids, memory.id) == [m.id for m in pending]
    assert await db.read(memories.list_valid_memories, conv.id) == [memory]
    assert await db.read(messages.count_uncompressed, conv.id) == 2
    assert [m.content for m in await db.read(messages.recent_uncompressed, conv.id, limit=9)] == [
        "m4",
        "m5",
    ]
    # what prompts read: the same walk, stopping at the compressed prefix
    assert [t.content for t in await db.read(messages.recent_turns, conv.id, limit=9)] == [
        "m4",
        "m5",
    ]

    # another branch is active: the memory is not valid there; back again: valid
    await db.write(tree.select_message, conv.id, other.id)
    assert await db.read(memories.stale_memory_ids, conv.id) == [memory.id]
    assert await db.read(memories.list_valid_memories, conv.id) == []
    await db.write(tree.select_message, conv.id, sent[5].id)
    assert await db.read(memories.list_valid_memories, conv.id) == [memory]

    # an edit after the memory was made: stale for good; invalidation releases its messages
    await db.write(tree.edit_message, conv.id, sent[1].id, "changed", now=datetime.now(UTC))
    assert await db.read(memories.stale_memory_ids, conv.id) == [memory.id]
    assert await db.write(memories.invalidate_stale, conv.id) == [memory.id]
    assert await db.read(memories.list_memories, conv.id) == []
    assert await db.read(messages.count_uncompressed, conv.id) == 6
    recent = await db.read(messages.recent_uncompressed, conv.id, limit=3)
    assert [m.content for m in recent] == ["m3", "m4", "m5"]
    turns = await db.read(messages.recent_turns, conv.id, limit=3)
    assert turns == [(m.role, m.content, m.status) for m in recent]


async def test_invalidation_keeps_compressed_messages_a_prefix(db: Database) -> None:
    _, _, conv = await make_direct(db)
    sent = await _chain(db, conv.id, 8)
    await _compress(db, conv.id, [m.id for m in sent[:2]], "first")
    await _compress(db, conv.id, [m.id for m in sent[2:4]], "second")
    first, second = await db.read(memories.list_memories, conv.id)
    assert await db.read(messages.count_uncompressed, conv.id) == 4
    # editing a message of the FIRST memory drops the second too (it summarises later ones)
    await db.write(tree.edit_message, conv.id, sent[1].id, "changed", now=datetime.now(UTC))
    dropped = await db.write(memories.invalidate_stale, conv.id)
    assert dropped == [first.id, second.id]
    assert await db.read(messages.count_uncompressed, conv.id) == 8

    # a branch made through add_message drops the memories of the path it leaves
    await _compress(db, conv.id, [m.id for m in sent[:4]], "again")
    assert await db.read(messages.count_uncompressed, conv.id) == 4
    await db.write(messages.add_message, conv.id, "assistant", "alt", parent_id=sent[2].id)
    assert await db.read(memories.list_memories, conv.id) == []
    assert await db.read(messages.count_uncompressed, conv.id) == 4  # m0, m1, m2, alt


async def test_concurrent_appends_chain_into_one_path(db: Database) -> None:
    """Appends racing on two engines (two processes) never fork the tree."""
    _, _, conv = await make_direct(db)
    async with open_database(db.url, migrate=False) as second:

        async def writer(target: Database, n: int) -> None:
            for i in range(3):
                await target.write(messages.add_message, conv.id, "user", f"w{n}-{i}")

        async with trio.open_nursery() as nursery:
            for n in range(20):
                nursery.start_soon(writer, db if n % 2 else second, n)
    path = await db.read(messages.active_path, conv.id)
    assert len(path) == 60
    assert [m.parent_id for m in path] == [None] + [m.id for m in path[:-1]]
    assert all(m.sibling_count == 1 for m in path)
