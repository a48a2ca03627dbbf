"""Database rows to records (no SQLAlchemy object leaves the storage layer)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Row

from .records import (
    Character,
    CharacterSettings,
    CharacterStatus,
    Conversation,
    ConversationKind,
    Group,
    GroupStrategy,
    Job,
    JobStatus,
    Memory,
    MemoryKind,
    MemoryOrigin,
    Message,
    MessageRole,
    MessageStatus,
    Source,
    User,
)

CATEGORIES: tuple[str, ...] = (
    "identity",
    "personality",
    "backstory",
    "abilities",
    "dialogue",
    "tasks",
    "world",
    "system",
)


def full_profile(profile: Mapping[str, Any] | None) -> dict[str, dict[str, Any] | None]:
    """``profile`` with every category key present (missing ones ``None``)."""
    profile = profile or {}
    return {category: profile.get(category) for category in CATEGORIES}


def user(row: Row[Any]) -> User:
    m = row._mapping
    return User(
        id=m["id"],
        username=m["username"],
        is_admin=bool(m["is_admin"]),
        disabled=bool(m["disabled"]),
        created_at=m["created_at"],
    )


def character(row: Row[Any]) -> Character:
    return character_of(row._mapping)


def character_of(m: Mapping[Any, Any]) -> Character:
    """A row's columns by name (``Row._mapping``, ``Direct.mappings``) as the record."""
    return Character(
        id=m["id"],
        user_id=m["user_id"],
        name=m["name"],
        status=cast(CharacterStatus, m["status"]),
        profile=full_profile(m["profile"]),
        source_text=m["source_text"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        greeting=m["greeting"],
        alternate_greetings=list(m["alternate_greetings"] or []),
        tags=list(m["tags"] or []),
        avatar_sha256=m["avatar_sha256"],
        sources=[Source(**s) for s in m["sources"] or []],
        settings=character_settings(m["settings"]),
        card_extra=m["card_extra"],
    )


def character_settings(stored: Mapping[str, Any] | None) -> CharacterSettings:
    """Stored settings JSON to the record (absent keys are defaults)."""
    stored = stored or {}
    return CharacterSettings(
        model=stored.get("model"),
        temperature=stored.get("temperature"),
        fallback_models=tuple(stored.get("fallback_models") or ()),
        language=stored.get("language"),
    )


def settings_json(settings: CharacterSettings) -> dict[str, Any]:
    """The record as stored (and as rendered by the API)."""
    return {
        "model": settings.model,
        "temperature": settings.temperature,
        "fallback_models": list(settings.fallback_models),
        "language": settings.language,
    }


def conversation(row: Row[Any]) -> Conversation:
    return conversation_of(row._mapping)


def conversation_of(m: Mapping[Any, Any]) -> Conversation:
    """A row's columns by name (``Row._mapping``, ``Direct.mappings``) as the record."""
    return Conversation(
        id=m["id"],
        user_id=m["user_id"],
        kind=cast(ConversationKind, m["kind"]),
        character_id=m["character_id"],
        group_id=m["group_id"],
        created_at=m["created_at"],
    )


def message(row: Row[Any]) -> Message:
    return message_of(row._mapping)


def message_of(m: Mapping[Any, Any]) -> Message:
    """A row's columns by name (``Row._mapping``, ``Direct.mappings``) as the record."""
    return Message(
        id=m["id"],
        conversation_id=m["conversation_id"],
        role=cast(MessageRole, m["role"]),
        content=m["content"],
        character_id=m["character_id"],
        status=cast(MessageStatus, m["status"]),
        compressed=bool(m["compressed"]),
        created_at=m["created_at"],
        parent_id=m["parent_id"],
        edited_at=m["edited_at"],
        model=m["model"],
    )


def memory(row: Row[Any]) -> Memory:
    return memory_of(row._mapping)


def memory_of(m: Mapping[Any, Any]) -> Memory:
    """A row's columns by name (``Row._mapping``, ``Direct.mappings``) as the record."""
    return Memory(
        id=m["id"],
        conversation_id=m["conversation_id"],
        character_id=m["character_id"],
        kind=cast(MemoryKind, m["kind"]),
        content=m["content"],
        importance=m["importance"],
        created_at=m["created_at"],
        pinned=bool(m["pinned"]),
        origin=cast(MemoryOrigin, m["origin"]),
        edited_at=m["edited_at"],
    )


def group(row: Row[Any], character_ids: Sequence[int], conversation_id: int) -> Group:
    m = row._mapping
    return Group(
        id=m["id"],
        user_id=m["user_id"],
        name=m["name"],
        character_ids=list(character_ids),
        strategy=cast(GroupStrategy, m["strategy"]),
        max_speakers=m["max_speakers"],
        conversation_id=conversation_id,
        created_at=m["created_at"],
        muted_character_ids=[int(c) for c in m["muted_character_ids"] or []],
        talkativeness={int(k): float(v) for k, v in (m["talkativeness"] or {}).items()},
        allow_self_responses=bool(m["allow_self_responses"]),
    )


def job(row: Row[Any]) -> Job:
    m = row._mapping
    return Job(
        id=m["id"],
        kind=m["kind"],
        payload=dict(m["payload"]),
        dedupe_key=m["dedupe_key"],
        status=cast(JobStatus, m["status"]),
        attempts=m["attempts"],
        run_at=m["run_at"],
        lease_owner=m["lease_owner"],
        lease_expires_at=m["lease_expires_at"],
        last_error=m["last_error"],
        created_at=m["created_at"],
    )
