"""Lorebook JSON formats ↔ FastNPC lorebooks: pure functions, no I/O.

Import (``read_lorebook``) accepts:

* a Character Card V3 lorebook (github.com/kwaroran/character-card-spec-v3), with or without
  its ``{"spec": "lorebook_v3", "data": {...}}`` wrapper: ``name``, ``description``,
  ``scan_depth``, ``token_budget``, ``recursive_scanning``, ``extensions`` and ``entries``
  (``keys``, ``content``, ``extensions``, ``enabled``, ``insertion_order``,
  ``case_sensitive``, ``use_regex``, ``constant``, ``name``, ``priority``, ``id``,
  ``comment``, ``selective``, ``secondary_keys``, ``position``);
* a Character Card V2 ``character_book`` (the same object without ``use_regex``: an entry
  whose keys include one in ``/pattern/flags`` form is imported with ``use_regex``, its plain
  keys escaped, as SillyTavern treats such keys);
* a SillyTavern world-info file: ``{"entries": {"<uid>": {"uid", "key", "keysecondary",
  "comment", "content", "constant", "selective", "order", "position" (0 before the character,
  1 after; others before), "disable", "caseSensitive", ...}}, ...}``; its other entry fields go
  to the entry's ``extensions``.

Fields FastNPC does not use (``extensions``, an entry's ``name`` and ``id``, unknown fields)
are kept (``extra``) and exported again unchanged; ``export_lorebook`` writes a V3 lorebook.
A missing or out-of-range ``scan_depth``/``token_budget`` takes the default (4, 512); the
result is then validated like a created lorebook (``LorebookIn``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import regex

from storage.lorebooks import ENTRY_FIELDS
from storage.records import Lorebook, LoreEntry

V3_SPEC = "lorebook_v3"
DEFAULT_NAME = "Imported lorebook"

_BOOK_MAPPED = {"name", "description", "scan_depth", "token_budget", "recursive_scanning"}
_ENTRY_MAPPED = set(ENTRY_FIELDS)  # the entry fields FastNPC stores as its own
_ST_MAPPED = {
    "uid",
    "key",
    "keysecondary",
    "comment",
    "content",
    "constant",
    "selective",
    "order",
    "position",
    "disable",
    "caseSensitive",
}
_SLASH_FORM = regex.compile(r"^/(.+)/([A-Za-z]*)$", regex.DOTALL)


class LoreFormatError(ValueError):
    """Not a lorebook in a known format (the message says why; ``details``: field errors)."""

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.details = details


def _strings(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise LoreFormatError(f"{where} must be a list of strings")
    return list(value)


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise LoreFormatError(f"{where} must be a string")
    return value


def _flag(value: Any, default: bool, where: str) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise LoreFormatError(f"{where} must be a boolean")
    return value


def _number(value: Any, default: int, where: str, low: int, high: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LoreFormatError(f"{where} must be a number")
    number = int(value)
    return number if low <= number <= high else default


def _regex_keys(keys: list[str], secondary: list[str]) -> tuple[list[str], list[str], bool]:
    """SillyTavern's per-key regexes: when any key is ``/pattern/flags``, the entry uses regex
    keys and its plain keys are escaped."""
    if not any(_SLASH_FORM.match(k) for k in (*keys, *secondary)):
        return keys, secondary, False

    def as_regex(key: str) -> str:
        return key if _SLASH_FORM.match(key) else regex.escape(key)

    return [as_regex(k) for k in keys], [as_regex(k) for k in secondary], True


def _card_entry(raw: Any, where: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    if not isinstance(raw, dict):
        raise LoreFormatError(f"{where} must be an object")
    keys = _strings(raw.get("keys"), f"{where}.keys")
    secondary = _strings(raw.get("secondary_keys"), f"{where}.secondary_keys")
    if raw.get("use_regex") is None:
        keys, secondary, use_regex = _regex_keys(keys, secondary)
    else:
        use_regex = _flag(raw.get("use_regex"), False, f"{where}.use_regex")
    position = raw.get("position")
    entry = {
        "keys": keys,
        "secondary_keys": secondary,
        "selective": _flag(raw.get("selective"), False, f"{where}.selective"),
        "constant": _flag(raw.get("constant"), False, f"{where}.constant"),
        "enabled": _flag(raw.get("enabled"), True, f"{where}.enabled"),
        "case_sensitive": _flag(raw.get("case_sensitive"), False, f"{where}.case_sensitive"),
        "use_regex": use_regex,
        "content": _text(raw.get("content"), f"{where}.content"),
        "insertion_order": _number(
            raw.get("insertion_order"), 100, f"{where}.insertion_order", -(10**6), 10**6
        ),
        "priority": _number(raw.get("priority"), 10, f"{where}.priority", -(10**6), 10**6),
        "position": "after_char" if position == "after_char" else "before_char",
        "comment": _text(raw.get("comment"), f"{where}.comment"),
    }
    extra = {k: v for k, v in raw.items() if k not in _ENTRY_MAPPED}
    return entry, extra or None


def _st_entry(raw: Any, where: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    if not isinstance(raw, dict):
        raise LoreFormatError(f"{where} must be an object")
    keys, secondary, use_regex = _regex_keys(
        _strings(raw.get("key"), f"{where}.key"),
        _strings(raw.get("keysecondary"), f"{where}.keysecondary"),
    )
    entry = {
        "keys": keys,
        "secondary_keys": secondary,
        "selective": _flag(raw.get("selective"), False, f"{where}.selective"),
        "constant": _flag(raw.get("constant"), False, f"{where}.constant"),
        "enabled": not _flag(raw.get("disable"), False, f"{where}.disable"),
        "case_sensitive": _flag(raw.get("caseSensitive"), False, f"{where}.caseSensitive"),
        "use_regex": use_regex,
        "content": _text(raw.get("content"), f"{where}.content"),
        "insertion_order": _number(raw.get("order"), 100, f"{where}.order", -(10**6), 10**6),
        "priority": 10,
        "position": "after_char" if raw.get("position") == 1 else "before_char",
        "comment": _text(raw.get("comment"), f"{where}.comment"),
    }
    kept = {k: v for k, v in raw.items() if k not in _ST_MAPPED}
    return entry, ({"extensions": kept} if kept else None)


ImportedLorebook = tuple[dict[str, Any], dict[str, Any] | None, list[dict[str, Any] | None]]
"""(the lorebook in ``LorebookIn``'s shape, its kept fields, each entry's kept fields)."""


def read_lorebook(raw: Any, *, default_name: str = DEFAULT_NAME) -> ImportedLorebook:
    """Parse a V3 lorebook (wrapped or not), a V2 ``character_book`` or a SillyTavern
    world-info file (``LoreFormatError`` when it is none of these)."""
    if not isinstance(raw, dict):
        raise LoreFormatError("a lorebook is a JSON object")
    if "spec" in raw:
        if raw.get("spec") != V3_SPEC or not isinstance(raw.get("data"), dict):
            raise LoreFormatError(f"spec must be {V3_SPEC} with a data object")
        raw = raw["data"]
    entries = raw.get("entries")
    if isinstance(entries, list):
        parsed = [_card_entry(e, f"entries[{i}]") for i, e in enumerate(entries)]
        book_extra = {k: v for k, v in raw.items() if k not in _BOOK_MAPPED and k != "entries"}
        recursive = _flag(raw.get("recursive_scanning"), False, "recursive_scanning")
    elif isinstance(entries, dict):  # SillyTavern world info, entries by uid
        ordered = sorted(entries.items(), key=lambda item: _uid_order(item[0], item[1]))
        parsed = [_st_entry(e, f"entries.{uid}") for uid, e in ordered]
        book_extra = {
            k: v for k, v in raw.items() if k not in _BOOK_MAPPED and k not in ("entries",)
        }
        recursive = _flag(raw.get("recursive_scanning"), False, "recursive_scanning")
    else:
        raise LoreFormatError("entries must be a list (V2/V3) or an object (SillyTavern)")
    name = _text(raw.get("name"), "name").strip()[:200] or default_name
    book = {
        "name": name,
        "description": _text(raw.get("description"), "description"),
        "scan_depth": _number(raw.get("scan_depth"), 4, "scan_depth", 1, 100),
        "token_budget": _number(raw.get("token_budget"), 512, "token_budget", 1, 10**6),
        "recursive": recursive,
        "entries": [entry for entry, _ in parsed],
    }
    return book, book_extra or None, [extra for _, extra in parsed]


def _uid_order(uid: str, entry: Any) -> tuple[int, str]:
    number = entry.get("uid") if isinstance(entry, dict) else None
    if isinstance(number, int) and not isinstance(number, bool):
        return number, uid
    return (int(uid), uid) if uid.isdigit() else (10**9, uid)


def _entry_json(entry: LoreEntry) -> dict[str, Any]:
    out: dict[str, Any] = {
        "keys": list(entry.keys),
        "content": entry.content,
        "extensions": {},
        "enabled": entry.enabled,
        "insertion_order": entry.insertion_order,
        "case_sensitive": entry.case_sensitive,
        "use_regex": entry.use_regex,
        "constant": entry.constant,
        "priority": entry.priority,
        "id": entry.id,
        "comment": entry.comment,
        "selective": entry.selective,
        "secondary_keys": list(entry.secondary_keys),
        "position": entry.position,
    }
    out.update(entry.extra or {})
    return out


def lorebook_data(book: Lorebook) -> dict[str, Any]:
    """The lorebook as a V3 lorebook object (also a card's ``character_book``)."""
    data: dict[str, Any] = {
        "name": book.name,
        "description": book.description,
        "scan_depth": book.scan_depth,
        "token_budget": book.token_budget,
        "recursive_scanning": book.recursive,
        "extensions": {},
    }
    data.update(_kept(book.extra))
    data["entries"] = [_entry_json(e) for e in book.entries]
    return data


def export_lorebook(book: Lorebook) -> dict[str, Any]:
    """The lorebook as V3 lorebook JSON (``{"spec": "lorebook_v3", "data": ...}``)."""
    return {"spec": V3_SPEC, "data": lorebook_data(book)}


def _kept(extra: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (extra or {}).items() if k not in _BOOK_MAPPED and k != "entries"}
