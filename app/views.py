"""Records → the JSON shapes of API.md (ids as strings, timestamps ISO 8601 UTC with `Z`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.services.speakers import DEFAULT_TALKATIVENESS
from app.services.usage import Quota
from storage.feedback import Feedback
from storage.prompt_snapshots import PromptSnapshot
from storage.records import (
    Character,
    Counts,
    Group,
    Lorebook,
    LoreEntry,
    Memory,
    Message,
    Page,
    Persona,
    User,
    UserWithCounts,
)
from storage.rows import settings_json
from storage.usage import DailyUsage
from storage.user_settings import UserSettings


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def user_view(user: User) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "username": user.username,
        "is_admin": user.is_admin,
        "disabled": user.disabled,
        "created_at": iso(user.created_at),
    }


def character_view(character: Character) -> dict[str, Any]:
    return {
        "id": str(character.id),
        "name": character.name,
        "status": character.status,
        "profile": character.profile,
        "greeting": character.greeting,
        "alternate_greetings": character.alternate_greetings,
        "tags": character.tags,
        "avatar_url": avatar_url(character.avatar_sha256),
        "sources": [
            {"provider": s.provider, "title": s.title, "url": s.url} for s in character.sources
        ],
        "settings": settings_json(character.settings),
        "has_source_text": character.source_text is not None,
        "created_at": iso(character.created_at),
        "updated_at": iso(character.updated_at),
    }


def avatar_url(sha256: str | None) -> str | None:
    """Where an avatar is served (the content hash is the capability)."""
    return None if sha256 is None else f"/media/avatars/{sha256}.png"


def persona_view(persona: Persona) -> dict[str, Any]:
    return {"name": persona.name, "description": persona.description}


def message_view(message: Message) -> dict[str, Any]:
    status = "interrupted" if message.status == "streaming" else message.status
    return {
        "id": str(message.id),
        "role": message.role,
        "content": message.content,
        "character_id": None if message.character_id is None else str(message.character_id),
        "status": status,
        "compressed": message.compressed,
        "created_at": iso(message.created_at),
        "parent_id": None if message.parent_id is None else str(message.parent_id),
        "sibling_index": message.sibling_index,
        "sibling_count": message.sibling_count,
        "edited_at": None if message.edited_at is None else iso(message.edited_at),
        "model": message.model if message.role == "assistant" else None,
    }


def page_view(page: Page) -> dict[str, Any]:
    return {
        "items": [message_view(m) for m in page.items],
        "next_before": None if page.next_before is None else str(page.next_before),
    }


def memory_view(memory: Memory, *, with_character: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": str(memory.id),
        "kind": memory.kind,
        "content": memory.content,
        "importance": memory.importance,
        "pinned": memory.pinned,
        "origin": memory.origin,
        "edited_at": None if memory.edited_at is None else iso(memory.edited_at),
        "created_at": iso(memory.created_at),
    }
    if with_character:
        view["character_id"] = None if memory.character_id is None else str(memory.character_id)
    return view


def group_view(group: Group) -> dict[str, Any]:
    return {
        "id": str(group.id),
        "name": group.name,
        "character_ids": [str(c) for c in group.character_ids],
        "strategy": group.strategy,
        "max_speakers": group.max_speakers,
        "created_at": iso(group.created_at),
        "muted_character_ids": [str(c) for c in group.muted_character_ids],
        "talkativeness": {
            str(c): group.talkativeness.get(c, DEFAULT_TALKATIVENESS) for c in group.character_ids
        },
        "allow_self_responses": group.allow_self_responses,
    }


def lore_entry_view(entry: LoreEntry) -> dict[str, Any]:
    return {
        "id": str(entry.id),
        "keys": entry.keys,
        "secondary_keys": entry.secondary_keys,
        "selective": entry.selective,
        "constant": entry.constant,
        "enabled": entry.enabled,
        "case_sensitive": entry.case_sensitive,
        "use_regex": entry.use_regex,
        "content": entry.content,
        "insertion_order": entry.insertion_order,
        "priority": entry.priority,
        "position": entry.position,
        "comment": entry.comment,
    }


def lorebook_view(book: Lorebook) -> dict[str, Any]:
    return {
        "id": str(book.id),
        "name": book.name,
        "description": book.description,
        "scan_depth": book.scan_depth,
        "token_budget": book.token_budget,
        "recursive": book.recursive,
        "entries": [lore_entry_view(e) for e in book.entries],
        "created_at": iso(book.created_at),
        "updated_at": iso(book.updated_at),
    }


def parse_id(raw: str | None) -> int | None:
    """An opaque id from a path, query or body; None when it cannot name anything.

    Ids are canonical: the decimal digits `str(id)` gives, so `05` or `+5` names nothing.
    """
    if raw is None or not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        return None
    if raw != str(int(raw)):  # ids are canonical: `05` is not `5`
        return None
    return int(raw)


def user_with_counts_view(entry: UserWithCounts) -> dict[str, Any]:
    return user_view(entry.user) | {"characters": entry.characters, "messages": entry.messages}


def counts_view(counts: Counts) -> dict[str, int]:
    return {
        "users": counts.users,
        "characters": counts.characters,
        "messages": counts.messages,
        "groups": counts.groups,
        "memories": counts.memories,
        **counts.extra,
    }


def usage_day_view(row: DailyUsage, *, with_user: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "date": row.day.isoformat(),
        "model": row.model,
        "calls": row.calls,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "cost": row.cost,
    }
    if with_user:
        view["user_id"] = str(row.user_id)
    return view


def quota_view(quota: Quota) -> dict[str, Any]:
    return {"monthly_tokens": quota.monthly_tokens, "used": quota.used}


def settings_view(settings: UserSettings) -> dict[str, Any]:
    return {"language": settings.language, "default_model": settings.default_model}


def feedback_view(item: Feedback) -> dict[str, Any]:
    return {
        "id": str(item.id),
        "message_id": None if item.message_id is None else str(item.message_id),
        "rating": item.rating,
        "comment": item.comment,
        "created_at": iso(item.created_at),
    }


def admin_feedback_view(item: Feedback) -> dict[str, Any]:
    return {
        **feedback_view(item),
        "user": user_view(item.user),
        "message": None if item.message is None else message_view(item.message),
    }


def prompt_snapshot_view(snapshot: PromptSnapshot) -> dict[str, Any]:
    return {
        "messages": snapshot.messages,
        "model": snapshot.model,
        "created_at": iso(snapshot.created_at),
    }
