"""Prompt building: the character's profile, its memories and the recent messages, in budget.

Token counts are estimated (about 3 characters a token, erring long for CJK text); the newest
messages are kept first, and the final user message always reaches the model verbatim.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from app.services.greetings import character_language, expand_macros
from app.services.opening import Interlocutor
from app.services.prompt_texts import EN, PromptTexts, text_language, texts_for
from llm import ChatMessage
from storage.records import Character, Language, LoreEntry, Memory, Message, Turn

if TYPE_CHECKING:
    from app.services.lore_activation import LoreSelection


def estimate_tokens(text: str) -> int:
    return len(text) // 3 + 4


def render_profile(
    character: Character, *, user: str | None = None, texts: PromptTexts | None = None
) -> str:
    """The character's profile as prompt text, ``{{char}}``/``{{user}}`` expanded (``user``:
    the name the user goes by)."""
    texts = texts or texts_for(character_language(character))

    def expand(text: str) -> str:
        return expand_macros(text, char=character.name, user=user or texts.user_label)

    lines = [texts.profile_intro.format(name=character.name)]
    for category, data in character.profile.items():
        if not data:
            continue
        lines.append(f"## {category}")
        for key, value in data.items():
            shown = "; ".join(map(str, value)) if isinstance(value, list) else str(value)
            lines.append(f"- {key}: {expand(shown)}")
    return "\n".join(lines)


def render_memories(memories: Sequence[Memory], texts: PromptTexts = EN) -> str:
    long_term = [m.content for m in memories if m.kind == "long_term"]
    short_term = [m.content for m in memories if m.kind == "short_term"]
    parts = []
    if long_term:
        parts.append(texts.long_term_memories + "\n" + "\n".join(f"- {m}" for m in long_term))
    if short_term:
        parts.append(texts.recent_memories + "\n" + "\n".join(f"- {m}" for m in short_term))
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


def direct_history(messages: Sequence[Message | Turn]) -> list[tuple[str, str]]:
    """One-to-one history as the model sees it (failed replies are left out)."""
    return [(m.role, m.content) for m in messages if m.status != "error"]


def render_lore(entries: Sequence[LoreEntry]) -> str:
    """Activated lorebook entries as one block of the system prompt ("" when none)."""
    if not entries:
        return ""
    return "World information:\n" + "\n\n".join(e.content.strip() for e in entries)


def character_system_prompt(
    character: Character,
    memories: Sequence[Memory],
    lore: LoreSelection | None = None,
    interlocutor: Interlocutor | None = None,
) -> str:
    """The character's system prompt in its language: lore entries ``before_char``, the profile
    (macros expanded), lore entries ``after_char``, memories, who it talks to (the user's
    persona) and the reply rule."""
    texts = texts_for(character_language(character))
    user = interlocutor.name if interlocutor is not None and interlocutor.name else None
    parts = [render_profile(character, user=user, texts=texts)]
    if lore is not None:
        parts = [p for p in (render_lore(lore.before), parts[0], render_lore(lore.after)) if p]
    rendered = render_memories(memories, texts)
    if rendered:
        parts.append(rendered)
    if interlocutor is not None:
        parts.append(persona_text(interlocutor, texts))
    parts.append(texts.reply_rule)
    return "\n\n".join(parts)


def persona_text(interlocutor: Interlocutor, texts: PromptTexts) -> str:
    """Who the character talks to: the persona's name and description."""
    lines = [texts.persona_name.format(name=interlocutor.name)]
    if interlocutor.description.strip():
        lines.append(
            texts.persona_description.format(
                name=interlocutor.name, description=interlocutor.description.strip()
            )
        )
    return "\n".join(lines)


def generation_prompt(
    name: str,
    category: str,
    description: str,
    *,
    source_text: str | None,
    known: dict[str, Any] | None = None,
    language: Language | None = None,
) -> list[ChatMessage]:
    """The messages for generating one profile category (or the greeting) as structured JSON,
    in ``language`` (default: Chinese when the name or source text is)."""
    texts = texts_for(language or text_language([name, source_text]))
    user = [
        texts.generation_name.format(name=name),
        texts.generation_category.format(category=category, description=description),
    ]
    if source_text:
        user.append(texts.generation_source.format(source=source_text))
    if known:
        user.append(texts.generation_known.format(known=json.dumps(known, ensure_ascii=False)))
    return [
        {"role": "system", "content": texts.generation_system},
        {"role": "user", "content": "\n\n".join(user)},
    ]


def speaker_frame(
    group_name: str, character: Character, others: Sequence[str], *, listening: bool
) -> str:
    """A group speaker's frame after its system prompt, in the character's language: where it
    is and with whom, reply only as itself (and, in a turn without a user message, that the
    user listens)."""
    texts = texts_for(character_language(character))
    frame = texts.group_frame.format(
        group=group_name,
        name=character.name,
        others=texts.list_separator.join(others) or texts.nobody_else,
    )
    return f"{frame}\n\n{texts.listening}" if listening else frame
