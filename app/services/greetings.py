"""Greetings and macros: what an empty one-to-one conversation opens with, and `{{char}}` /
`{{user}}` replacement (API.md "Characters: greetings, avatars, cards, settings").

Pure functions for the chat side to call: `opening_messages` gives the texts to store as the
first assistant message and its sibling alternatives; `expand_macros` is applied to every
character text that goes into a prompt; `character_language` picks the language of the prompt
text the server writes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from storage.records import Character, Language

_MACRO = re.compile(r"\{\{(char|user)\}\}", re.IGNORECASE)
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def expand_macros(text: str, *, char: str, user: str) -> str:
    """``text`` with ``{{char}}`` and ``{{user}}`` (any case) replaced by the names."""
    names = {"char": char, "user": user}
    return _MACRO.sub(lambda m: names[m.group(1).lower()], text)


def opening_messages(character: Character, *, user: str) -> list[str]:
    """The greeting then each alternate greeting, macros expanded; empty without a greeting.

    ``user`` is the persona's name or the username (`personas.display_name`).
    """
    if not character.greeting:
        return []
    texts = [character.greeting, *(g for g in character.alternate_greetings if g)]
    return [expand_macros(t, char=character.name, user=user) for t in texts]


def character_language(character: Character) -> Language:
    """``settings.language``, else ``zh`` when the character's texts contain CJK, else ``en``."""
    if character.settings.language is not None:
        return character.settings.language
    texts = [character.name, character.greeting or "", *character.alternate_greetings]
    for entry in character.profile.values():
        texts.extend(str(v) for v in (entry or {}).values())
    return text_language(texts)


def text_language(texts: Iterable[str | None]) -> Language:
    """``zh`` when any of ``texts`` contains CJK, else ``en`` (e.g. generation source text)."""
    return "zh" if any(t and _CJK.search(t) for t in texts) else "en"
