"""Prompt building: the character's profile, its memories and the recent messages, in budget.

Token counts are estimated (about 3 characters a token, erring long for CJK text); the newest
messages are kept first, and the final user message always reaches the model verbatim.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llm import ChatMessage
from storage.records import Character, LoreEntry, Memory, Message

if TYPE_CHECKING:
    from app.services.lore_activation import LoreSelection


def estimate_tokens(text: str) -> int:
    return len(text) // 3 + 4


def render_profile(character: Character) -> str:
    lines = [f"You are {character.name}. Stay in character at all times."]
    for category, data in character.profile.items():
        if not data:
            continue
        lines.append(f"## {category}")
        for key, value in data.items():
            shown = "; ".join(map(str, value)) if isinstance(value, list) else str(value)
            lines.append(f"- {key}: {shown}")
    return "\n".join(lines)


def render_memories(memories: Sequence[Memory]) -> str:
    long_term = [m.content for m in memories if m.kind == "long_term"]
    short_term = [m.content for m in memories if m.kind == "short_term"]
    parts = []
    if long_term:
        parts.append("Long-term memories:\n" + "\n".join(f"- {m}" for m in long_term))
    if short_term:
        parts.append("Recent memories:\n" + "\n".join(f"- {m}" for m in short_term))
    return "\n\n".join(parts)


def build_prompt(
    system: str,
    history: Sequence[tuple[str, str]],
    *,
    budget: int,
) -> list[ChatMessage]:
    """System text plus as much of `history` ((role, content), oldest first) as fits.

    The last history item is the user message being answered and is always included verbatim.
    """
    messages: list[ChatMessage] = [{"role": "system", "content": system}]
    if not history:
        return messages
    *older, last = history
    used = estimate_tokens(system) + estimate_tokens(last[1])
    kept: list[ChatMessage] = []
    for role, content in reversed(older):
        cost = estimate_tokens(content)
        if used + cost > budget:
            break
        used += cost
        kept.append({"role": _role(role), "content": content})
    kept.reverse()
    messages += kept
    messages.append({"role": _role(last[0]), "content": last[1]})
    return messages


def _role(role: str) -> Any:
    return "assistant" if role == "assistant" else "user"


def direct_history(messages: Sequence[Message]) -> list[tuple[str, str]]:
    """One-to-one history as the model sees it (failed replies are left out)."""
    return [(m.role, m.content) for m in messages if m.status != "error"]


def render_lore(entries: Sequence[LoreEntry]) -> str:
    """Activated lorebook entries as one block of the system prompt ("" when none)."""
    if not entries:
        return ""
    return "World information:\n" + "\n\n".join(e.content.strip() for e in entries)


def character_system_prompt(
    character: Character, memories: Sequence[Memory], lore: LoreSelection | None = None
) -> str:
    """The character's system prompt: lore entries ``before_char``, the profile, lore entries
    ``after_char``, memories, the frame."""
    parts = [render_profile(character)]
    if lore is not None:
        parts = [p for p in (render_lore(lore.before), parts[0], render_lore(lore.after)) if p]
    rendered = render_memories(memories)
    if rendered:
        parts.append(rendered)
    parts.append(
        "Reply as the character, in the character's voice. Do not describe yourself as an AI."
    )
    return "\n\n".join(parts)


def generation_prompt(
    name: str,
    category: str,
    description: str,
    *,
    source_text: str | None,
    known: dict[str, Any] | None = None,
) -> list[ChatMessage]:
    """The messages for generating one profile category as structured JSON."""
    system = (
        "You design characters for interactive role-play. Answer with one JSON object that "
        "matches the given schema exactly, with rich, specific, consistent content."
    )
    user = [f"Character name: {name}", f"Category: {category} — {description}"]
    if source_text:
        user.append("Ground every detail in this source material:\n" + source_text)
    if known:
        user.append(
            "Already known about the character (stay consistent):\n"
            + json.dumps(known, ensure_ascii=False)
        )
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(user)}]
