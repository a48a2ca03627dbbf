"""Small builders shared by the storage tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from storage import Database, characters, conversations, users
from storage.records import Character, Conversation, User

T0 = datetime(2026, 11, 27, 20, 0, tzinfo=UTC)

FULL_PROFILE: dict[str, dict[str, Any] | None] = {
    category: {"note": f"{category} text"} for category in characters.CATEGORIES
}


async def make_user(db: Database, name: str = "alice") -> User:
    return await db.write(users.create_user, name, f"hash-of-{name}")


async def make_character(db: Database, user: User, name: str = "Mira") -> Character:
    return await db.write(characters.create_character, user.id, name, {"identity": {"name": name}})


async def make_direct(db: Database, name: str = "alice") -> tuple[User, Character, Conversation]:
    user = await make_user(db, name)
    character = await make_character(db, user)
    conversation = await db.write(conversations.get_or_create_direct, user.id, character.id)
    return user, character, conversation
