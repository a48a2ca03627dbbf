"""storage.direct: statements on the driver's cursor give what SQLAlchemy's execution gives.

Each record built from a `Direct` row mapping is compared with the record SQLAlchemy's own
rows give for the same data (timestamps aware UTC and equal, booleans, JSON, NULLs), on every
backend under test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Connection, bindparam, insert, select

from storage import (
    ConstraintViolation,
    Database,
    StorageError,
    characters,
    conversations,
    generations,
    memories,
    messages,
    personas,
    prompt_snapshots,
    rows,
    tree,
    usage,
    user_settings,
)
from storage.direct import Direct
from storage.records import Persona
from storage.schema import characters as characters_table
from storage.schema import conversations as conversations_table
from storage.schema import memories as memories_table
from storage.schema import messages as messages_table
from storage.schema import users as users_table

from .helpers import FULL_PROFILE, T0, make_direct, make_user

# a timestamp away from UTC: what is stored and read back is the same instant, in UTC
EAST = timezone(timedelta(hours=8))


def _aware_utc(value: datetime | None) -> None:
    assert value is not None and value.tzinfo is UTC


async def test_rows_match_sqlalchemy_rows_for_every_column_type(db: Database) -> None:
    _, character, conv = await make_direct(db)
    at = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=EAST)
    stored = await db.write(messages.add_message, conv.id, "user", "hi", created_at=at)
    await db.write(
        memories.add_memory,
        conv.id,
        character_id=None,
        content="a memory",
        importance=3,
        pinned=True,
    )
    statements = [
        select(characters_table).where(characters_table.c.id == bindparam("id")),
        select(messages_table).where(messages_table.c.id == bindparam("message_id")),
        select(memories_table).where(memories_table.c.conversation_id == bindparam("cid")),
        select(conversations_table).where(conversations_table.c.id == bindparam("cid")),
    ]
    params = {"id": character.id, "message_id": stored.id, "cid": conv.id}

    def both(conn: Connection) -> list[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
        return [
            (Direct(s).rows(conn, params), [tuple(r) for r in conn.execute(s, params)])
            for s in statements
        ]

    for direct_rows, sqlalchemy_rows in await db.read(both):
        assert direct_rows == sqlalchemy_rows
        assert direct_rows  # something was compared
        # the same types and time zones too (True == 1; equal instants in other zones)
        assert repr(direct_rows) == repr(sqlalchemy_rows)
        for value in (v for row in direct_rows for v in row if isinstance(v, datetime)):
            _aware_utc(value)


async def test_add_message_returns_what_a_read_gives(db: Database) -> None:
    _, _, conv = await make_direct(db)
    at = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=EAST)
    edited = datetime(2026, 3, 5, tzinfo=EAST)
    added = []
    for kwargs in [
        {"role": "user", "content": "one"},  # a root, stamped now
        {  # after it, every column given (times away from UTC)
            "role": "assistant",
            "content": "two ✓",
            "status": "interrupted",
            "model": "m/1",
            "character_id": conv.character_id,
            "created_at": at,
            "edited_at": edited,
        },
        {"role": "assistant", "content": "three", "parent_id": "first"},  # a sibling of "two"
    ]:
        if kwargs.get("parent_id") == "first":
            kwargs["parent_id"] = added[0].id
        message = await db.write(messages.add_message, conv.id, **kwargs)
        # the record made of what was stored is the record a read gives, at once
        assert await db.read(messages.get_message, message.id) == message
        _aware_utc(message.created_at)
        added.append(message)
    first, reply, sibling = added
    assert reply.created_at == at and reply.edited_at == edited
    _aware_utc(reply.edited_at)
    assert (sibling.sibling_index, sibling.sibling_count) == (1, 2)
    assert first.edited_at is None and first.model is None and first.compressed is False


async def test_character_and_direct_match_the_separate_reads(db: Database) -> None:
    user, character, conv = await make_direct(db)
    alone = await db.write(characters.create_character, user.id, "Alone", FULL_PROFILE)
    other = await make_user(db, "bob")
    for character_id, expected in [
        (character.id, (character, conv)),
        (alone.id, (alone, None)),
    ]:
        found = await db.read(conversations.character_and_direct, user.id, character_id)
        assert found == expected
        assert found[0] == await db.read(characters.get_character, user.id, character_id)
        assert found[1] == await db.read(conversations.get_direct, user.id, character_id)
        assert found[0] is not None
        _aware_utc(found[0].created_at)
    assert found[0].profile == rows.full_profile(FULL_PROFILE)
    assert await db.read(conversations.character_and_direct, other.id, character.id) == (
        None,
        None,
    )


async def test_memories_and_staleness_match_sqlalchemy_rows(db: Database) -> None:
    _, _, conv = await make_direct(db)
    said = [await db.write(messages.add_message, conv.id, "user", f"m{i}") for i in range(3)]
    await db.write(
        memories.apply_compression,
        conv.id,
        upto_message_id=said[1].id,
        summaries={None: [("compressed", 2)]},
    )
    await db.write(
        memories.add_memory, conv.id, character_id=None, content="mine", importance=1, pinned=True
    )

    def through_sqlalchemy(conn: Connection) -> list[Any]:
        found = conn.execute(
            select(memories_table)
            .where(memories_table.c.conversation_id == conv.id)
            .order_by(memories_table.c.id)
        )
        return [rows.memory(row) for row in found]

    listed = await db.read(memories.list_memories, conv.id)
    assert sorted(listed, key=lambda m: m.id) == await db.read(through_sqlalchemy)
    for memory in listed:
        _aware_utc(memory.created_at)
    assert [m.pinned for m in sorted(listed, key=lambda m: m.id)] == [False, True]
    assert await db.read(memories.stale_memory_ids, conv.id) == []
    assert len(await db.read(memories.list_valid_memories, conv.id)) == 2
    # editing a summarised message after the memory was made makes it stale (a timestamp
    # comparison of two processed columns)
    await db.write(tree.edit_message, conv.id, said[0].id, "changed", now=datetime.now(UTC))
    compressed = next(m for m in listed if m.content == "compressed")
    assert await db.read(memories.stale_memory_ids, conv.id) == [compressed.id]
    assert [m.content for m in await db.read(memories.list_valid_memories, conv.id)] == ["mine"]


async def test_username_persona_settings_usage_and_snapshots(db: Database) -> None:
    user = await make_user(db)
    assert await db.read(personas.username_and_persona, user.id) == ("alice", Persona())
    await db.write(personas.set_persona, user.id, name="Bao", description="a traveller")
    assert await db.read(personas.username_and_persona, user.id) == (
        "alice",
        await db.read(personas.get_persona, user.id),
    )
    assert await db.read(personas.username_and_persona, user.id + 100) == ("", Persona())

    assert await db.read(user_settings.get_settings, user.id) == user_settings.UserSettings()
    await db.write(user_settings.set_settings, user.id, monthly_token_quota=500, language="zh")
    assert await db.read(user_settings.get_settings, user.id) == user_settings.UserSettings(
        "zh", None, 500
    )

    day = T0.date()
    for _ in range(2):
        await db.write(
            usage.record_usage, user.id, day, "m/1", prompt_tokens=3, completion_tokens=4, cost=0.5
        )
    (row,) = await db.read(usage.list_usage, user.id, day)
    assert (row.calls, row.prompt_tokens, row.completion_tokens, row.cost) == (2, 6, 8, 1.0)

    _, _, conv = await make_direct(db, "carol")
    reply = await db.write(messages.add_message, conv.id, "assistant", "hello")
    prompt = [{"role": "system", "content": "be kind ✓"}, {"role": "user", "content": "hi"}]
    await db.write(prompt_snapshots.record_prompt, reply.id, prompt, "m/1")
    await db.write(prompt_snapshots.record_prompt, reply.id, [], "m/2")  # ignored: one per message
    snapshot = await db.read(prompt_snapshots.get_prompt, reply.id, since=T0)
    assert snapshot is not None and (snapshot.messages, snapshot.model) == (prompt, "m/1")
    _aware_utc(snapshot.created_at)


async def test_generation_claim_takes_over_only_an_expired_row(db: Database) -> None:
    _, _, conv = await make_direct(db)
    first = await db.write(
        generations.begin_generation, conv.id, owner="a", lease_seconds=10, now=T0
    )
    assert first is not None
    busy = await db.write(
        generations.begin_generation, conv.id, owner="b", lease_seconds=10, now=T0
    )
    assert busy is None
    later = T0 + timedelta(seconds=11)
    second = await db.write(
        generations.begin_generation, conv.id, owner="b", lease_seconds=10, now=later
    )
    assert second is not None and second != first
    assert await db.read(generations.active_generation, conv.id, now=later) == second


async def test_driver_errors_are_translated_and_the_cursor_recovers(db: Database) -> None:
    _, _, conv = await make_direct(db)
    with pytest.raises(ConstraintViolation):
        await db.write(messages.add_message, conv.id + 1000, "user", "nowhere")
    missing_parent = Direct(
        select(messages_table.c.id).where(messages_table.c.id == bindparam("x"))
    )
    with pytest.raises(StorageError):  # a parameter not given
        await db.read(lambda conn: missing_parent.rows(conn, {}))
    # the same connection and cursor keep working after an error
    for _ in range(3):
        with pytest.raises(ConstraintViolation):
            await db.write(messages.add_message, conv.id + 1000, "user", "nowhere")
        assert (await db.write(messages.add_message, conv.id, "user", "here")).content == "here"


def test_statements_direct_cannot_run_faithfully_are_refused() -> None:
    from sqlalchemy.dialects import postgresql, sqlite

    expanding = Direct(
        select(messages_table.c.id).where(messages_table.c.id.in_(bindparam("ids", expanding=True)))
    )
    defaulted = Direct(insert(users_table).values(username=bindparam("u")))
    for dialect in (sqlite.dialect(), postgresql.psycopg.dialect()):
        with pytest.raises(ValueError, match="expanding"):
            expanding.compiled(dialect)
        with pytest.raises(ValueError, match="default"):
            defaulted.compiled(dialect)
