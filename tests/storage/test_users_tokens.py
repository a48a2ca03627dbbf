"""users, tokens and stats."""

from __future__ import annotations

from datetime import timedelta

import pytest
import trio
from sqlalchemy import Connection

from storage import (
    Database,
    LastAdmin,
    UsernameTaken,
    conversations,
    groups,
    memories,
    messages,
    stats,
    tokens,
    users,
)
from storage.schema import users as users_table

from .helpers import T0, make_character, make_direct, make_user


async def test_create_and_get_user(db: Database) -> None:
    user = await make_user(db, "bob")
    assert user.username == "bob" and not user.is_admin and not user.disabled
    assert user.created_at.utcoffset() == timedelta(0)
    assert await db.read(users.get_user, user.id) == user
    assert await db.read(users.get_user, user.id + 100) is None
    creds = await db.read(users.get_credentials, "bob")
    assert creds is not None and creds.user == user and creds.password_hash == "hash-of-bob"
    assert await db.read(users.get_credentials, "nobody") is None


async def test_username_taken(db: Database) -> None:
    await make_user(db, "bob")
    with pytest.raises(UsernameTaken):
        await make_user(db, "bob")
    # The failed insert left the database usable and unchanged.
    assert [u.user.username for u in await db.read(users.list_users_with_counts)] == ["bob"]


async def test_usernames_are_unique_case_insensitively_and_keep_their_case(
    db: Database,
) -> None:
    bob = await make_user(db, "BoB")
    for other in ("bob", "BOB", "bOb"):
        with pytest.raises(UsernameTaken):
            await make_user(db, other)
    for spelling in ("BoB", "bob", "BOB"):
        creds = await db.read(users.get_credentials, spelling)
        assert creds is not None and creds.user == bob and creds.user.username == "BoB"
    assert [u.user.username for u in await db.read(users.list_users_with_counts)] == ["BoB"]


async def test_registration_race_has_one_winner(db: Database) -> None:
    spellings = ["racer", "RACER", "Racer", "rAcEr"]
    winners: list[str] = []
    losers = 0

    async def register(i: int) -> None:
        nonlocal losers
        name = spellings[i % len(spellings)]
        try:
            await db.write(users.create_user, name, f"hash-{i}")
        except UsernameTaken:
            losers += 1
        else:
            winners.append(name)

    async with trio.open_nursery() as nursery:
        for i in range(100):
            nursery.start_soon(register, i)
    assert len(winners) == 1 and losers == 99
    listed = await db.read(users.list_users_with_counts)
    assert [u.user.username for u in listed] == winners


async def test_last_enabled_admin_cannot_be_disabled_or_demoted(db: Database) -> None:
    root = await db.write(users.ensure_admin, "root", "h")
    for change in ({"disabled": True}, {"is_admin": False}, {"disabled": True, "is_admin": True}):
        with pytest.raises(LastAdmin):
            await db.write(users.update_user, root.id, **change)
    assert await db.read(users.get_user, root.id) == root
    # harmless changes to the last admin still go through
    assert await db.write(users.update_user, root.id, disabled=False, is_admin=True) == root
    # a disabled admin does not count as the other admin
    other = await db.write(users.ensure_admin, "other", "h")
    await db.write(users.update_user, other.id, disabled=True)
    with pytest.raises(LastAdmin):
        await db.write(users.update_user, root.id, is_admin=False)
    await db.write(users.update_user, other.id, disabled=False)
    demoted = await db.write(users.update_user, root.id, is_admin=False)
    assert demoted is not None and not demoted.is_admin
    with pytest.raises(LastAdmin):
        await db.write(users.update_user, other.id, disabled=True)


async def test_two_admins_demoting_each_other_at_once_leave_one(db: Database) -> None:
    first = await db.write(users.ensure_admin, "first", "h")
    second = await db.write(users.ensure_admin, "second", "h")
    refused = 0

    async def demote(user_id: int) -> None:
        nonlocal refused
        try:
            await db.write(users.update_user, user_id, is_admin=False)
        except LastAdmin:
            refused += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(demote, first.id)
        nursery.start_soon(demote, second.id)
    admins = [u.user for u in await db.read(users.list_users_with_counts) if u.user.is_admin]
    assert refused == 1 and len(admins) == 1


async def test_ensure_admin_creates_then_promotes(db: Database) -> None:
    admin = await db.write(users.ensure_admin, "root", "h1")
    assert admin.is_admin
    plain = await make_user(db, "carol")
    await db.write(users.update_user, plain.id, disabled=True)
    promoted = await db.write(users.ensure_admin, "carol", "h2")
    assert promoted.id == plain.id and promoted.is_admin and not promoted.disabled
    creds = await db.read(users.get_credentials, "carol")
    assert creds is not None and creds.password_hash == "h2"
    # the configured admin name in another case is the same account
    again = await db.write(users.ensure_admin, "CAROL", "h3")
    assert again.id == plain.id and again.username == "carol"


async def test_tokens_expire_revoke_and_follow_user_state(db: Database) -> None:
    user = await make_user(db)
    await db.write(tokens.create_token, user.id, "t1", T0 + timedelta(hours=1))
    await db.write(tokens.create_token, user.id, "t2", T0 + timedelta(hours=1))
    assert await db.read(tokens.user_for_token, "t1", T0) == user
    assert await db.read(tokens.user_for_token, "t1", T0 + timedelta(hours=1)) is None  # expired
    assert await db.read(tokens.user_for_token, "unknown", T0) is None

    await db.write(tokens.revoke_token, "t1")
    assert await db.read(tokens.user_for_token, "t1", T0) is None
    assert await db.read(tokens.user_for_token, "t2", T0) == user
    assert await db.write(tokens.revoke_user_tokens, user.id) == 1
    assert await db.read(tokens.user_for_token, "t2", T0) is None


async def test_disabling_revokes_tokens_and_blocks_login_by_token(db: Database) -> None:
    user = await make_user(db)
    await db.write(tokens.create_token, user.id, "t", T0 + timedelta(days=1))
    updated = await db.write(users.update_user, user.id, disabled=True)
    assert updated is not None and updated.disabled
    # Re-enabling does not resurrect the revoked token.
    await db.write(users.update_user, user.id, disabled=False)
    assert await db.read(tokens.user_for_token, "t", T0) is None
    assert await db.write(users.update_user, user.id + 99, is_admin=True) is None
    made_admin = await db.write(users.update_user, user.id, is_admin=True)
    assert made_admin is not None and made_admin.is_admin and not made_admin.disabled
    assert await db.write(users.update_user, user.id) == made_admin


async def test_token_of_disabled_user_is_rejected_even_if_not_revoked(db: Database) -> None:
    user = await make_user(db)
    await db.write(tokens.create_token, user.id, "t", T0 + timedelta(days=1))

    def disable_without_revoking(conn: Connection) -> None:
        conn.execute(users_table.update().values(disabled=True))

    await db.write(disable_without_revoking)
    assert await db.read(tokens.user_for_token, "t", T0) is None


async def test_user_counts_and_stats(db: Database) -> None:
    alice, mira, conv = await make_direct(db, "alice")
    bob = await make_user(db, "bob")
    nova = await make_character(db, alice, "Nova")
    await db.write(messages.add_message, conv.id, "user", "hi")
    await db.write(messages.add_message, conv.id, "assistant", "hello", character_id=mira.id)
    group = await db.write(
        groups.create_group, alice.id, "g", [mira.id, nova.id], strategy="all", max_speakers=2
    )
    await db.write(messages.add_message, group.conversation_id, "user", "all of you")
    await db.write(
        memories.apply_compression,
        conv.id,
        upto_message_id=10**9,
        summaries={None: [("they met", 3)]},
    )

    counted = {c.user.username: c for c in await db.read(users.list_users_with_counts)}
    assert (counted["alice"].characters, counted["alice"].messages) == (2, 3)
    assert (counted["bob"].characters, counted["bob"].messages) == (0, 0)
    assert counted["bob"].user == bob

    totals = await db.read(stats.counts)
    assert (totals.users, totals.characters, totals.messages, totals.groups, totals.memories) == (
        2,
        2,
        3,
        1,
        1,
    )
    assert totals.extra["conversations"] == 2
    assert await db.read(conversations.get_conversation, conv.id) == conv
