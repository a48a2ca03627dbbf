"""Characters: a profile of eight categories (JSON), status, the source text, and the card side:
greetings, tags, avatar (an ``avatars`` key), sources, LLM settings and kept card data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select, update

from . import avatars, rows
from .records import Character, CharacterSettings, CharacterStatus, Source
from .rows import CATEGORIES, character_settings, full_profile, settings_json
from .schema import characters
from .timestamps import utcnow
from .unchanged import UNCHANGED

__all__ = [
    "CATEGORIES",
    "UNCHANGED",
    "CharacterExtras",
    "copy_character",
    "create_character",
    "delete_character",
    "get_character",
    "get_characters",
    "list_characters",
    "set_avatar",
    "update_character",
]

Profile = Mapping[str, dict[str, Any] | None]


SETTINGS_KEYS = ("model", "temperature", "fallback_models", "language")


@dataclass(frozen=True, slots=True)
class CharacterExtras:
    """The card side of a new character (everything but name, profile and source text)."""

    greeting: str | None = None
    alternate_greetings: Sequence[str] = ()
    tags: Sequence[str] = ()
    sources: Sequence[Source] = ()
    settings: CharacterSettings = CharacterSettings()
    card_extra: Mapping[str, Any] | None = None
    avatar_png: bytes | None = None


def _sources_json(sources: Sequence[Source]) -> list[dict[str, str]]:
    return [{"provider": s.provider, "title": s.title, "url": s.url} for s in sources]


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
    extras: CharacterExtras | None = None,
) -> Character:
    """Create a character; missing categories are stored as null.

    Status is ``ready`` iff all eight categories are non-null, else ``partial``.
    ``extras.avatar_png`` (already normalised) is stored in the same transaction.
    """
    stored = _checked(profile)
    extras = extras or CharacterExtras()
    avatar = None if extras.avatar_png is None else avatars.hold(conn, extras.avatar_png)
    row = conn.execute(
        characters.insert()
        .values(
            user_id=user_id,
            name=name,
            status=_status(stored),
            profile=stored,
            source_text=source_text,
            greeting=extras.greeting,
            alternate_greetings=list(extras.alternate_greetings),
            tags=list(extras.tags),
            avatar_sha256=avatar,
            sources=_sources_json(extras.sources),
            settings=settings_json(extras.settings),
            card_extra=None if extras.card_extra is None else dict(extras.card_extra),
        )
        .returning(*characters.c)
    ).one()
    return rows.character(row)


_CHARACTER = select(characters).where(
    characters.c.id == bindparam("id"), characters.c.user_id == bindparam("user_id")
)


def get_character(conn: Connection, user_id: int, character_id: int) -> Character | None:
    """The character if it exists and belongs to ``user_id``, else None."""
    row = conn.execute(_CHARACTER, {"id": character_id, "user_id": user_id}).first()
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
    greeting: str | None = UNCHANGED,
    alternate_greetings: Sequence[str] = UNCHANGED,
    tags: Sequence[str] = UNCHANGED,
    sources: Sequence[Source] = UNCHANGED,
    settings: Mapping[str, Any] = UNCHANGED,
) -> Character | None:
    """Rename and/or replace the given categories; status recomputed, updated_at bumped.

    Keywords left ``UNCHANGED`` keep their value; ``settings`` replaces only the keys given
    (``model``, ``temperature``, ``fallback_models``, ``language``).
    Returns None if the character does not exist or is not the user's.
    """
    current = conn.execute(
        select(characters.c.profile, characters.c.settings)
        .where(characters.c.id == character_id, characters.c.user_id == user_id)
        .with_for_update()
    ).first()
    if current is None:
        return None
    values: dict[str, Any] = {"updated_at": utcnow()}
    if name is not None:
        values["name"] = name
    if greeting is not UNCHANGED:
        values["greeting"] = greeting
    if alternate_greetings is not UNCHANGED:
        values["alternate_greetings"] = list(alternate_greetings)
    if tags is not UNCHANGED:
        values["tags"] = list(tags)
    if sources is not UNCHANGED:
        values["sources"] = _sources_json(sources)
    if settings is not UNCHANGED:
        unknown = set(settings) - set(SETTINGS_KEYS)
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}")
        merged_settings = settings_json(character_settings(current.settings)) | dict(settings)
        values["settings"] = settings_json(character_settings(merged_settings))
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


def set_avatar(
    conn: Connection, user_id: int, character_id: int, png: bytes | None
) -> Character | None:
    """Show ``png`` (already normalised) as the character's avatar, or none; updated_at bumped.

    The previous picture is deleted when no character shows it any more. Returns None if the
    character does not exist or is not the user's.
    """
    current = conn.execute(
        select(characters.c.avatar_sha256)
        .where(characters.c.id == character_id, characters.c.user_id == user_id)
        .with_for_update()
    ).first()
    if current is None:
        return None
    sha = None if png is None else avatars.hold(conn, png)
    row = conn.execute(
        update(characters)
        .where(characters.c.id == character_id)
        .values(avatar_sha256=sha, updated_at=utcnow())
        .returning(*characters.c)
    ).one()
    if current.avatar_sha256 != sha:
        avatars.release(conn, current.avatar_sha256)
    return rows.character(row)


def delete_character(conn: Connection, user_id: int, character_id: int) -> bool:
    """Delete the character and everything that hangs off it, in one transaction.

    Its direct conversation (messages, memories, generation), its group
    memberships and its memories of group conversations go with it (foreign
    key cascades); its past group messages stay, with ``character_id`` null.
    Its avatar goes when no other character shows it.
    Returns False if it does not exist or is not the user's.
    """
    deleted = conn.execute(
        delete(characters)
        .where(characters.c.id == character_id, characters.c.user_id == user_id)
        .returning(characters.c.avatar_sha256)
    ).first()
    if deleted is None:
        return False
    avatars.release(conn, deleted.avatar_sha256)
    return True


def copy_character(conn: Connection, user_id: int, character_id: int) -> Character | None:
    """A new character of ``user_id`` with the profile, source text, greetings, tags, avatar,
    sources, settings and kept card data of their character ``character_id`` (None if they
    have no such character). Conversations and memories are not copied."""
    source = conn.execute(
        select(characters).where(characters.c.id == character_id, characters.c.user_id == user_id)
    ).first()
    if source is None:
        return None
    if source.avatar_sha256 is not None:
        avatars.lock(conn, source.avatar_sha256)  # a concurrent release sees the new reference
    copied = {
        name: getattr(source, name)
        for name in characters.c.keys()
        if name not in ("id", "created_at", "updated_at")
    }
    now = utcnow()
    insert = characters.insert().values(**copied, created_at=now, updated_at=now)
    row = conn.execute(insert.returning(*characters.c)).one()
    return rows.character(row)
