"""The card side of characters (greetings, tags, settings, sources, kept card data), avatars
shared by content and deleted with their last reference, and personas."""

from __future__ import annotations

import pytest
import trio
from sqlalchemy import Connection, func, select

from storage import Database, avatars, characters, personas
from storage.characters import CharacterExtras
from storage.records import CharacterSettings, Persona, Source
from storage.schema import avatars as avatars_table
from storage.schema import characters as characters_table

from .helpers import make_character, make_user

PNG_A = b"\x89PNG fake picture A"
PNG_B = b"\x89PNG fake picture B"


async def _avatar_rows(db: Database) -> int:
    def count(conn: Connection) -> int:
        return int(conn.execute(select(func.count()).select_from(avatars_table)).scalar_one())

    return await db.read(count)


async def test_create_with_extras_round_trips_every_field(db: Database) -> None:
    user = await make_user(db)
    extras = CharacterExtras(
        greeting="你好，{{user}}。",
        alternate_greetings=["Hi.", "Hey."],
        tags=["fantasy", "中文"],
        sources=[Source("wikipedia", "Mira", "https://en.wikipedia.org/wiki/Mira")],
        settings=CharacterSettings(
            model="z-ai/glm-4-32b", temperature=0.7, fallback_models=("a/b",), language="zh"
        ),
        card_extra={"data": {"creator": "someone", "extensions": {"x": [1, {"y": None}]}}},
        avatar_png=PNG_A,
    )
    created = await db.write(
        characters.create_character, user.id, "Mira", {"identity": {"name": "Mira"}}, extras=extras
    )
    stored = await db.read(characters.get_character, user.id, created.id)
    assert stored == created
    assert stored is not None
    assert stored.greeting == "你好，{{user}}。"
    assert stored.alternate_greetings == ["Hi.", "Hey."]
    assert stored.tags == ["fantasy", "中文"]
    assert stored.sources == [Source("wikipedia", "Mira", "https://en.wikipedia.org/wiki/Mira")]
    assert stored.settings == extras.settings
    assert stored.card_extra == extras.card_extra
    assert stored.avatar_sha256 == avatars.sha256_of(PNG_A)
    assert await db.read(avatars.get_avatar, avatars.sha256_of(PNG_A)) == PNG_A


async def test_defaults_for_a_plain_character(db: Database) -> None:
    user = await make_user(db)
    character = await make_character(db, user)
    assert character.greeting is None and character.alternate_greetings == []
    assert character.tags == [] and character.sources == [] and character.avatar_sha256 is None
    assert character.settings == CharacterSettings() and character.card_extra is None


async def test_update_keeps_what_is_not_given_and_merges_settings(db: Database) -> None:
    user = await make_user(db)
    character = await make_character(db, user)
    first = await db.write(
        characters.update_character,
        user.id,
        character.id,
        greeting="Hello",
        tags=["a"],
        settings={"model": "m/1", "temperature": 1.5},
    )
    assert first is not None
    assert first.settings == CharacterSettings(model="m/1", temperature=1.5)
    second = await db.write(
        characters.update_character,
        user.id,
        character.id,
        alternate_greetings=["Yo"],
        settings={"language": "en", "temperature": None},
    )
    assert second is not None
    assert second.greeting == "Hello" and second.tags == ["a"]
    assert second.alternate_greetings == ["Yo"]
    assert second.settings == CharacterSettings(model="m/1", language="en")
    cleared = await db.write(characters.update_character, user.id, character.id, greeting=None)
    assert cleared is not None and cleared.greeting is None
    with pytest.raises(ValueError, match="unknown settings"):
        await db.write(characters.update_character, user.id, character.id, settings={"x": 1})


async def test_avatar_is_shared_by_content_and_deleted_with_its_last_reference(
    db: Database,
) -> None:
    user = await make_user(db)
    one = await make_character(db, user, "One")
    two = await make_character(db, user, "Two")
    a = await db.write(characters.set_avatar, user.id, one.id, PNG_A)
    b = await db.write(characters.set_avatar, user.id, two.id, PNG_A)
    assert a is not None and b is not None
    assert a.avatar_sha256 == b.avatar_sha256 == avatars.sha256_of(PNG_A)
    assert await _avatar_rows(db) == 1

    await db.write(characters.set_avatar, user.id, one.id, PNG_B)
    assert await _avatar_rows(db) == 2  # A still shown by Two
    await db.write(characters.set_avatar, user.id, two.id, None)
    assert await db.read(avatars.get_avatar, avatars.sha256_of(PNG_A)) is None
    assert await _avatar_rows(db) == 1

    same = await db.write(characters.set_avatar, user.id, one.id, PNG_B)  # same picture again
    assert same is not None and same.avatar_sha256 == avatars.sha256_of(PNG_B)
    assert await _avatar_rows(db) == 1
    assert await db.write(characters.delete_character, user.id, one.id)
    assert await _avatar_rows(db) == 0


async def test_set_avatar_of_someone_elses_character_is_none(db: Database) -> None:
    alice = await make_user(db, "alice")
    bob = await make_user(db, "bob")
    character = await make_character(db, alice)
    assert await db.write(characters.set_avatar, bob.id, character.id, PNG_A) is None
    assert await _avatar_rows(db) == 0


async def test_persona_defaults_and_partial_updates(db: Database) -> None:
    user = await make_user(db)
    other = await make_user(db, "bob")
    assert await db.read(personas.get_persona, user.id) == Persona(None, "")
    assert await db.write(personas.set_persona, user.id, name="旅人") == Persona("旅人", "")
    both = await db.write(personas.set_persona, user.id, description="A tired traveller.")
    assert both == Persona("旅人", "A tired traveller.")
    assert await db.write(personas.set_persona, user.id, name=None) == Persona(
        None, "A tired traveller."
    )
    assert await db.read(personas.get_persona, user.id) == Persona(None, "A tired traveller.")
    assert await db.read(personas.get_persona, other.id) == Persona()


async def test_concurrent_sets_releases_and_deletes_leave_no_dangling_avatar(db: Database) -> None:
    """Many writers set, clear and delete characters showing the same two pictures at once;
    afterwards every reference has its row and every row is referenced."""
    user = await make_user(db)
    made = [await make_character(db, user, f"C{i}") for i in range(8)]

    async def churn(index: int) -> None:
        character = made[index]
        for step in range(6):
            png = (PNG_A, PNG_B, None)[(index + step) % 3]
            await db.write(characters.set_avatar, user.id, character.id, png)
        if index % 2:
            await db.write(characters.delete_character, user.id, character.id)

    async with trio.open_nursery() as nursery:
        for index in range(len(made)):
            nursery.start_soon(churn, index)

    def state(conn: Connection) -> tuple[set[str], set[str]]:
        shown = {
            row.avatar_sha256
            for row in conn.execute(select(characters_table.c.avatar_sha256))
            if row.avatar_sha256 is not None
        }
        stored = {row.sha256 for row in conn.execute(select(avatars_table.c.sha256))}
        return shown, stored

    shown, stored = await db.read(state)
    assert shown == stored
