"""Character Card V2/V3 JSON ↔ FastNPC characters: pure functions, no I/O.

Specs: Character Card V2 (``chara_card_v2``, github.com/malfoyslastname/character-card-spec-v2)
and V3 (``chara_card_v3``, github.com/kwaroran/character-card-spec-v3). Both are
``{"spec", "spec_version", "data": {...}}``; V3's ``data`` is V2's plus ``group_only_greetings``
(required), ``assets``, ``nickname``, ``creator_notes_multilingual``, ``source``,
``creation_date`` and ``modification_date``.

Mapping of the card's ``data`` fields (import →, export ←):

======================== =========================================== ==========================
card field               FastNPC on import                           export
======================== =========================================== ==========================
name                     ``Character.name`` (and ``identity.name``)  ``Character.name``
description              ``identity.background``                     identity.background, then
                                                                     the other fields of
                                                                     identity, backstory,
                                                                     abilities as
                                                                     ``Label: value`` lines
personality              ``personality.traits``                      personality.traits, then
                                                                     the other personality and
                                                                     dialogue fields as lines
scenario                 ``world.setting``                           world.setting, then the
                                                                     other world and tasks
                                                                     fields as lines
system_prompt            ``system.role_rules``                       system.role_rules, then
                                                                     the other system fields
mes_example              ``dialogue.examples`` (extra field)         dialogue.examples
post_history_instructions ``system.post_history_instructions``       the same field
first_mes                ``greeting`` (``""`` → null)                greeting or ``""``
alternate_greetings      ``alternate_greetings``                     the same
tags                     ``tags``                                    the same
character_book           a lorebook attached to the character        the first attached
                         (``app.services.lore_formats``)             lorebook, if any
everything else          kept unchanged (``card_extra``): the other  kept values; defaults
                         V2/V3 fields (creator_notes, creator,       (``""``, ``[]``, ``{}``)
                         character_version, nickname, assets,        for required fields a
                         source, dates, …), unknown fields, every    card never had
                         extension but ``fastnpc``, unknown
                         top-level keys
======================== =========================================== ==========================

A card text that is empty maps to nothing: its category stays null (``?complete=true``
generates it). A category is created only by the text that maps into it, so an imported card
exports its texts back exactly. ``data.extensions.fastnpc`` (written on every export) holds
the full profile, settings, sources and whether there was an avatar; a card carrying it is
restored exactly from it (name, greetings and tags still come from the card fields).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from storage.characters import CATEGORIES
from storage.records import Character
from storage.rows import settings_json

Spec = Literal["v2", "v3"]

SPECS: dict[Spec, tuple[str, str]] = {
    "v2": ("chara_card_v2", "2.0"),
    "v3": ("chara_card_v3", "3.0"),
}
EXTENSION = "fastnpc"
EXTENSION_VERSION = 1

# Card text field -> (category, home field, categories whose other fields follow as lines)
TEXTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "description": ("identity", "background", ("identity", "backstory", "abilities")),
    "personality": ("personality", "traits", ("personality", "dialogue")),
    "scenario": ("world", "setting", ("world", "tasks")),
    "system_prompt": ("system", "role_rules", ("system",)),
    "mes_example": ("dialogue", "examples", ()),
    "post_history_instructions": ("system", "post_history_instructions", ()),
}
MAPPED = frozenset({*TEXTS, "name", "first_mes", "alternate_greetings", "tags", "character_book"})
# Fields never rendered as lines: the name, and every home field (each has its own card field).
_NOT_LINES = {("identity", "name")} | {(c, f) for c, f, _ in TEXTS.values()}
# SillyTavern mirrors these V1 fields at the top level of a V2 card; refreshed on export.
V1_MIRRORS = ("name", "description", "personality", "scenario", "first_mes", "mes_example", "tags")

V2_DEFAULTS: dict[str, Any] = {
    "creator_notes": "",
    "creator": "",
    "character_version": "",
}
V3_DEFAULTS: dict[str, Any] = {**V2_DEFAULTS, "group_only_greetings": []}
V3_BACKFILL_NOTE = (
    "This character card is Character Card V3, but it is loaded as a Character Card V2. "
    "Please use a Character Card V3 compatible application to use this character card properly."
)


class CardError(ValueError):
    """Not a Character Card V2/V3 (the message says why)."""


@dataclass(frozen=True)
class ImportedCard:
    """What a card says about a character, before validation against our schemas."""

    name: str
    profile: dict[str, dict[str, Any] | None]
    greeting: str | None
    alternate_greetings: list[str]
    tags: list[str]
    card_extra: dict[str, Any]
    source_text: str  # the card's texts, for generating missing categories
    # From ``extensions.fastnpc`` (None when the card has none): restore exactly.
    fastnpc: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    sources: list[Any] = field(default_factory=list)
    character_book: dict[str, Any] | None = None  # becomes a lorebook (not validated yet)

    @property
    def keeps_picture(self) -> bool:
        """Whether a PNG card's picture is the character's avatar (not a generated one)."""
        return self.fastnpc is None or bool(self.fastnpc.get("has_avatar"))


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CardError(f"data.{key} must be a string")
    return value


def _strings(data: Mapping[str, Any], key: str) -> list[str]:
    value = data.get(key, [])
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CardError(f"data.{key} must be a list of strings")
    return list(value)


def read_card(card: Any) -> ImportedCard:
    """Parse a V2 or V3 card object (``CardError`` when it is neither)."""
    if not isinstance(card, dict):
        raise CardError("a card is a JSON object")
    spec = card.get("spec")
    if spec not in (SPECS["v2"][0], SPECS["v3"][0]):
        raise CardError(f"spec must be chara_card_v2 or chara_card_v3, not {spec!r}")
    data = card.get("data")
    if not isinstance(data, dict):
        raise CardError("data must be an object")
    name = _text(data, "name").strip()
    if not name:
        raise CardError("data.name must be a non-empty string")
    extensions = data.get("extensions", {})
    if extensions is None:
        extensions = {}
    if not isinstance(extensions, dict):
        raise CardError("data.extensions must be an object")
    book = data.get("character_book")
    if book is not None and not isinstance(book, dict):
        raise CardError("data.character_book must be an object")

    texts = {key: _text(data, key) for key in TEXTS}
    profile: dict[str, dict[str, Any] | None] = dict.fromkeys(CATEGORIES)
    for key, (category, home, _) in TEXTS.items():
        if texts[key]:
            entry = profile[category] or ({"name": name} if category == "identity" else {})
            entry[home] = texts[key]
            profile[category] = entry
    greeting = _text(data, "first_mes")

    kept_extensions = {k: v for k, v in extensions.items() if k != EXTENSION}
    kept_data = {k: v for k, v in data.items() if k not in MAPPED and k != "extensions"}
    kept_data["extensions"] = kept_extensions
    mirrors = [k for k in V1_MIRRORS if k in card]
    top = {k: v for k, v in card.items() if k != "data" and k not in mirrors}
    card_extra = {"top": top, "data": kept_data, "mirrors": mirrors}

    ours = extensions.get(EXTENSION)
    if ours is not None and not isinstance(ours, dict):
        raise CardError("data.extensions.fastnpc must be an object")
    imported = ImportedCard(
        name=name,
        profile=profile,
        greeting=greeting or None,
        alternate_greetings=_strings(data, "alternate_greetings"),
        tags=_strings(data, "tags"),
        card_extra=card_extra,
        source_text="\n\n".join(t for t in texts.values() if t),
        character_book=book,
    )
    if ours is None:
        return imported
    restored = ours.get("profile")
    if not isinstance(restored, dict):
        raise CardError("data.extensions.fastnpc.profile must be an object")
    settings = ours.get("settings", {})
    sources = ours.get("sources", [])
    if not isinstance(settings, dict) or not isinstance(sources, list):
        raise CardError("data.extensions.fastnpc settings/sources are malformed")
    return ImportedCard(
        name=imported.name,
        profile=restored,
        greeting=imported.greeting,
        alternate_greetings=imported.alternate_greetings,
        tags=imported.tags,
        card_extra=card_extra,
        source_text=imported.source_text,
        fastnpc=ours,
        settings=settings,
        sources=sources,
        character_book=book,
    )


def _label(field_name: str) -> str:
    return field_name.replace("_", " ").capitalize()


def _render(value: Any) -> str:
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value)


def render_text(profile: Mapping[str, dict[str, Any] | None], key: str) -> str:
    """The card text field ``key`` rendered from the profile (see the table above)."""
    category, home, rest = TEXTS[key]
    parts: list[str] = []
    entry = profile.get(category) or {}
    if entry.get(home):
        parts.append(_render(entry[home]))
    for other in rest:
        for name, value in (profile.get(other) or {}).items():
            if (other, name) in _NOT_LINES or value in (None, "", []):
                continue
            parts.append(f"{_label(name)}: {_render(value)}")
    return "\n".join(parts)


def _timestamp(character: Character, attribute: Literal["created_at", "updated_at"]) -> int:
    return int(getattr(character, attribute).timestamp())


def write_card(
    character: Character, spec: Spec, character_book: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The character as a V2 or V3 card object (``data.extensions.fastnpc`` included), with
    ``character_book`` (its lorebook as a card lorebook object) when given."""
    spec_name, version = SPECS[spec]
    extra = character.card_extra or {}
    kept_data: dict[str, Any] = dict(extra.get("data") or {})
    extensions = dict(kept_data.pop("extensions", None) or {})
    extensions[EXTENSION] = {
        "version": EXTENSION_VERSION,
        "profile": character.profile,
        "settings": settings_json(character.settings),
        "sources": [
            {"provider": s.provider, "title": s.title, "url": s.url} for s in character.sources
        ],
        "has_avatar": character.avatar_sha256 is not None,
    }
    data: dict[str, Any] = {
        "name": character.name,
        **{key: render_text(character.profile, key) for key in TEXTS},
        "first_mes": character.greeting or "",
        "alternate_greetings": list(character.alternate_greetings),
        "tags": list(character.tags),
    }
    defaults = V3_DEFAULTS if spec == "v3" else V2_DEFAULTS
    if character_book is not None:
        data["character_book"] = character_book
    data = {**defaults, **data, **kept_data, "extensions": extensions}
    if spec == "v3" and character.card_extra is None:
        data["creation_date"] = _timestamp(character, "created_at")
        data["modification_date"] = _timestamp(character, "updated_at")
    if spec == "v3" and character.sources and "source" not in data:
        data["source"] = [s.url for s in character.sources]

    top: dict[str, Any] = dict(extra.get("top") or {})
    original_spec = top.pop("spec", None)
    original_version = top.pop("spec_version", None)
    if original_spec == spec_name and isinstance(original_version, str):
        version = original_version
    card: dict[str, Any] = {"spec": spec_name, "spec_version": version, "data": data}
    for key in extra.get("mirrors") or ():
        card[key] = data[key]
    return {**card, **top, "spec": spec_name, "spec_version": version, "data": data}


def v2_backfill(
    character: Character, character_book: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The V2 card written next to a V3 one in a PNG's ``chara`` chunk (spec V3: it carries a
    note that the card is really V3)."""
    card = write_card(character, "v2", character_book)
    notes = card["data"].get("creator_notes") or ""
    card["data"]["creator_notes"] = f"{V3_BACKFILL_NOTE}\n\n{notes}" if notes else V3_BACKFILL_NOTE
    return card
