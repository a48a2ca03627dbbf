"""Characters: a profile of eight categories (JSON), status, and the source text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, delete, select, update

from . import rows
from .records import Character, CharacterStatus
from .rows import CATEGORIES, full_profile
from .schema import characters
from .timestamps import utcnow

__all__ = [
    "CATEGORIES",
    "create_character",
    "delete_character",
    "get_character",
    "get_characters",
    "list_characters",
    "update_character",
]

Profile = Mapping[str, dict[str, Any] | None]


def _status(profile: Mapping[str, Any]) -> CharacterStatus:
    return "ready" if all(profile.get(c) is not None for c in CATEGORIES) else "partial"


def _checked(profile: Profile) -> dict[str, dict[str, Any] | None]:
    unknown = set(profile) - set(CATEGORIES)
    if unknown:
        raise ValueError(f"unknown profile categories: {sorted(unknown)}")
    return full_profile(profile)


def create_character(
    conn: Connection,
    user_id: int,
    name: str,
    profile: Profile,
    *,
    source_text: str | None = None,
) -> Character:
    """Create a character; missing categories are stored as null.

    Status is ``ready`` iff all eight categories are non-null, else ``partial``.
    """
    stored = _checked(profile)
    row = conn.execute(
        characters.insert()
        .values(
            user_id=user_id,
            name=name,
            status=_status(stored),
            profile=stored,
            source_text=source_text,
        )
        .returning(*characters.c)
    ).one()
    return rows.character(row)


def get_character(conn: Connection, user_id: int, character_id: int) -> Character | None:
    """The character if it exists and belongs to ``user_id``, else None."""
    row = conn.execute(
        select(characters).where(characters.c.id == character_id, characters.c.user_id == user_id)
    ).first()
    return rows.character(row) if row else None


def get_characters(conn: Connection, user_id: int, character_ids: Sequence[int]) -> list[Character]:
    """The owner's characters among ``character_ids``, in the given order; others omitted."""
    if not character_ids:
        return []
    found = {
        row.id: rows.character(row)
        for row in conn.execute(
            select(characters).where(
                characters.c.user_id == user_id, characters.c.id.in_(sorted(set(character_ids)))
            )
        )
    }
    return [found[i] for i in character_ids if i in found]


def list_characters(conn: Connection, user_id: int) -> list[Character]:
    """All of the user's characters, oldest first."""
    result = conn.execute(
        select(characters).where(characters.c.user_id == user_id).order_by(characters.c.id)
    )
    return [rows.character(row) for row in result]


def update_character(
    conn: Connection,
    user_id: int,
    character_id: int,
    *,
    name: str | None = None,
    profile: Profile | None = None,
) -> Character | None:
    """Rename and/or replace the given categories; status recomputed, updated_at bumped.

    Returns None if the character does not exist or is not the user's.
    """
    current = conn.execute(
        select(characters.c.profile)
        .where(characters.c.id == character_id, characters.c.user_id == user_id)
        .with_for_update()
    ).first()
    if current is None:
        return None
    values: dict[str, Any] = {"updated_at": utcnow()}
    if name is not None:
        values["name"] = name
    if profile is not None:
        unknown = set(profile) - set(CATEGORIES)
        if unknown:
            raise ValueError(f"unknown profile categories: {sorted(unknown)}")
        merged = full_profile(current.profile)
        merged.update(profile)
        values["profile"] = merged
        values["status"] = _status(merged)
    row = conn.execute(
        update(characters)
        .where(characters.c.id == character_id)
        .values(**values)
        .returning(*characters.c)
    ).one()
    return rows.character(row)


def delete_character(conn: Connection, user_id: int, character_id: int) -> bool:
    """Delete the character and everything that hangs off it, in one transaction.

    Its direct conversation (messages, memories, generation), its group
    memberships and its memories of group conversations go with it (foreign
    key cascades); its past group messages stay, with ``character_id`` null.
    Returns False if it does not exist or is not the user's.
    """
    result = conn.execute(
        delete(characters).where(characters.c.id == character_id, characters.c.user_id == user_id)
    )
    return result.rowcount > 0
