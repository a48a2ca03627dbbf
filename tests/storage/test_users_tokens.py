"""users, tokens and stats."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Connection

from storage import (
    Database,
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


async def test_ensure_admin_creates_then_promotes(db: Database) -> None:
    admin = await db.write(users.ensure_admin, "root", "h1")
    assert admin.is_admin
    plain = await make_user(db, "carol")
    await db.write(users.update_user, plain.id, disabled=True)
    promoted = await db.write(users.ensure_admin, "carol", "h2")
    assert promoted.id == plain.id and promoted.is_admin and not promoted.disabled
    creds = await db.read(users.get_credentials, "carol")
    assert creds is not None and creds.password_hash == "h2"


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
