"""characters and groups, including what deleting a character takes with it."""

from __future__ import annotations

import pytest
import trio

from storage import (
    ConstraintViolation,
    Database,
    characters,
    conversations,
    generations,
    groups,
    memories,
    messages,
)

from .helpers import FULL_PROFILE, T0, make_character, make_direct, make_user


async def test_create_character_status_and_profile_keys(db: Database) -> None:
    user = await make_user(db)
    partial = await make_character(db, user)
    assert partial.status == "partial"
    assert list(partial.profile) == list(characters.CATEGORIES)
    assert partial.profile["identity"] == {"name": "Mira"} and partial.profile["world"] is None
    assert partial.source_text is None

    ready = await db.write(
        characters.create_character, user.id, "Full", FULL_PROFILE, source_text="a long text"
    )
    assert ready.status == "ready" and ready.source_text == "a long text"
    assert ready.profile == FULL_PROFILE
    # Field order and non-ASCII text come back as written, on every backend.
    identity = {"name": "林黛玉", "age": "17", "occupation": "poet", "background": "Jiangnan"}
    ordered = await db.write(characters.create_character, user.id, "林", {"identity": identity})
    again = await db.read(characters.get_character, user.id, ordered.id)
    assert again is not None and again.name == "林"
    assert list((again.profile["identity"] or {}).items()) == list(identity.items())
    with pytest.raises(ValueError, match="unknown profile categories"):
        await db.write(characters.create_character, user.id, "x", {"bogus": {}})


async def test_characters_are_owner_scoped_and_ordered(db: Database) -> None:
    alice = await make_user(db, "alice")
    bob = await make_user(db, "bob")
    a1 = await make_character(db, alice, "A1")
    b1 = await make_character(db, bob, "B1")
    a2 = await make_character(db, alice, "A2")

    assert await db.read(characters.get_character, alice.id, a1.id) == a1
    assert await db.read(characters.get_character, bob.id, a1.id) is None
    assert await db.read(characters.list_characters, alice.id) == [a1, a2]
    got = await db.read(characters.get_characters, alice.id, [a2.id, b1.id, 999, a1.id])
    assert got == [a2, a1]
    assert await db.read(characters.get_characters, alice.id, []) == []


async def test_update_character_merges_categories(db: Database) -> None:
    user = await make_user(db)
    character = await make_character(db, user)
    # Timestamps are at least microsecond-distinct; wait out the clock for updated_at.
    await trio.sleep(0.002)
    rest = {k: v for k, v in FULL_PROFILE.items() if k != "identity"}
    updated = await db.write(
        characters.update_character, user.id, character.id, name="Mira II", profile=rest
    )
    assert updated is not None
    assert updated.name == "Mira II" and updated.status == "ready"
    assert updated.profile["identity"] == {"name": "Mira"}  # untouched category kept
    assert updated.profile["world"] == FULL_PROFILE["world"]
    assert updated.updated_at > character.updated_at
    assert updated.created_at == character.created_at

    cleared = await db.write(
        characters.update_character, user.id, character.id, profile={"world": None}
    )
    assert cleared is not None and cleared.status == "partial" and cleared.name == "Mira II"
    other = await make_user(db, "mallory")
    assert await db.write(characters.update_character, other.id, character.id, name="x") is None
    assert await db.read(characters.get_character, user.id, character.id) == cleared


async def test_delete_character_takes_its_chat_and_memberships(db: Database) -> None:
    user, mira, conv = await make_direct(db)
    nova = await make_character(db, user, "Nova")
    zed = await make_character(db, user, "Zed")
    group = await db.write(
        groups.create_group,
        user.id,
        "trio",
        [mira.id, nova.id, zed.id],
        strategy="round_robin",
        max_speakers=2,
    )
    gconv = group.conversation_id
    await db.write(messages.add_message, conv.id, "user", "hi")
    await db.write(
        memories.apply_compression, conv.id, upto_message_id=10**9, summaries={None: [("m", 1)]}
    )
    await db.write(generations.begin_generation, conv.id, owner="p", lease_seconds=30, now=T0)
    spoke = await db.write(
        messages.add_message, gconv, "assistant", "I'm Mira", character_id=mira.id
    )
    await db.write(messages.add_message, gconv, "assistant", "I'm Nova", character_id=nova.id)
    await db.write(
        memories.apply_compression,
        gconv,
        upto_message_id=10**9,
        summaries={mira.id: [("mira's", 1)], nova.id: [("nova's", 1)]},
    )

    assert await db.write(characters.delete_character, user.id + 1, mira.id) is False
    assert await db.write(characters.delete_character, user.id, mira.id) is True
    assert await db.write(characters.delete_character, user.id, mira.id) is False

    assert await db.read(conversations.get_conversation, conv.id) is None
    assert await db.read(messages.list_messages, conv.id, limit=10, before=None) == (
        await db.read(messages.list_messages, -1, limit=10, before=None)
    )
    assert await db.read(generations.active_generation, conv.id, now=T0) is None
    regrouped = await db.read(groups.get_group, user.id, group.id)
    assert regrouped is not None and regrouped.character_ids == [nova.id, zed.id]
    left = await db.read(memories.list_memories, gconv, all_characters=True)
    assert [m.content for m in left] == ["nova's"]
    # The group history keeps what was said, without the speaker.
    kept = await db.read(messages.get_message, spoke.id)
    assert kept is not None and kept.content == "I'm Mira" and kept.character_id is None


async def test_group_crud(db: Database) -> None:
    user = await make_user(db)
    a, b, c = [await make_character(db, user, n) for n in ("A", "B", "C")]
    group = await db.write(
        groups.create_group, user.id, "party", [b.id, a.id], strategy="moderator", max_speakers=2
    )
    assert group.character_ids == [b.id, a.id] and group.strategy == "moderator"
    conv = await db.read(conversations.get_conversation, group.conversation_id)
    assert conv is not None and conv.kind == "group" and conv.group_id == group.id
    assert conv.character_id is None
    assert await db.read(groups.get_group, user.id, group.id) == group
    other = await make_user(db, "eve")
    assert await db.read(groups.get_group, other.id, group.id) is None
    assert await db.read(groups.list_groups, other.id) == []

    second = await db.write(
        groups.create_group, user.id, "duo", [c.id, a.id], strategy="all", max_speakers=1
    )
    assert await db.read(groups.list_groups, user.id) == [group, second]

    updated = await db.write(
        groups.update_group,
        user.id,
        group.id,
        name="party 2",
        character_ids=[c.id, b.id, a.id],
        strategy="round_robin",
        max_speakers=3,
    )
    assert updated is not None
    assert (updated.name, updated.character_ids, updated.strategy, updated.max_speakers) == (
        "party 2",
        [c.id, b.id, a.id],
        "round_robin",
        3,
    )
    reordered = await db.write(groups.update_group, user.id, group.id, character_ids=[a.id, c.id])
    assert reordered is not None and reordered.character_ids == [a.id, c.id]
    assert reordered.name == "party 2"
    assert await db.write(groups.update_group, other.id, group.id, name="x") is None
    assert await db.write(groups.update_group, other.id, group.id, character_ids=[a.id]) is None

    await db.write(messages.add_message, group.conversation_id, "user", "hello")
    assert await db.write(groups.delete_group, other.id, group.id) is False
    assert await db.write(groups.delete_group, user.id, group.id) is True
    assert await db.read(groups.get_group, user.id, group.id) is None
    assert await db.read(conversations.get_conversation, group.conversation_id) is None
    assert await db.read(groups.list_groups, user.id) == [second]
    # Members' characters survive their group.
    assert len(await db.read(characters.list_characters, user.id)) == 3


async def test_group_with_missing_character_is_a_constraint_violation(db: Database) -> None:
    user = await make_user(db)
    a = await make_character(db, user)
    with pytest.raises(ConstraintViolation):
        await db.write(
            groups.create_group, user.id, "g", [a.id, 424242], strategy="all", max_speakers=1
        )
    assert await db.read(groups.list_groups, user.id) == []  # rolled back as a whole


async def test_group_steering_fields(db: Database) -> None:
    user = await make_user(db)
    a = await make_character(db, user, "A")
    b = await make_character(db, user, "B")
    group = await db.write(
        groups.create_group, user.id, "g", [a.id, b.id], strategy="natural", max_speakers=1
    )
    assert group.strategy == "natural"
    assert group.muted_character_ids == [] and group.talkativeness == {}
    assert group.allow_self_responses is False
    changed = await db.write(
        groups.update_group,
        user.id,
        group.id,
        muted_character_ids=[b.id],
        talkativeness={a.id: 0.25, b.id: 1},
        allow_self_responses=True,
    )
    assert changed is not None
    again = await db.read(groups.get_group, user.id, group.id)
    assert again == changed
    assert again.muted_character_ids == [b.id]
    assert again.talkativeness == {a.id: 0.25, b.id: 1.0}
    assert again.allow_self_responses is True
    made = await db.write(
        groups.create_group,
        user.id,
        "h",
        [a.id, b.id],
        strategy="pooled",
        max_speakers=2,
        muted_character_ids=[a.id],
        talkativeness={b.id: 0.0},
        allow_self_responses=True,
    )
    listed = {g.id: g for g in await db.read(groups.list_groups, user.id)}
    assert listed[made.id] == made and made.talkativeness == {b.id: 0.0}
