"""Lorebook activation: which entries enter a prompt. Pure functions of (entries, scanned text).

Rules (API.md "Lorebooks"):

* A key matches as a substring (Chinese needs no word boundaries), case-insensitively unless
  the entry is ``case_sensitive``. With ``use_regex`` every key is a regular expression, raw
  or in SillyTavern's ``/pattern/flags`` form (flags ``i``, ``m``, ``s``, ``u``; any other flag
  makes the key invalid), case-insensitive unless ``case_sensitive`` (an explicit ``i`` always
  is). An invalid pattern never matches. Matching uses the ``regex`` engine with a timeout per
  search and a bound on all regex matching of one activation (``REGEX_TOTAL_SECONDS``): a
  catastrophic pattern times out and counts as no match, so the caller is never stalled long.
* ``selective`` entries also need one of their ``secondary_keys`` (SillyTavern: an empty
  secondary list means the primary keys alone decide). ``constant`` entries always activate;
  disabled ones never.
* With ``recursive``, the content of activated entries is added to the scanned text and the
  remaining entries are scanned again, at most ``MAX_RECURSION`` times after the first scan.
* Each book is scanned over its own window (the new message plus its ``scan_depth`` previous
  messages) and keeps within its own ``token_budget`` (estimated like the prompt budget):
  the lowest ``priority`` entries are dropped first (at equal priority, the later in insertion
  order). The chosen entries are ordered by (the book's place: the character's books before the
  group's; ``insertion_order``; entry id).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

import ahocorasick
import regex

from app.services.prompts import estimate_tokens
from storage.records import Lorebook, LoreEntry

MAX_RECURSION = 3
REGEX_SEARCH_SECONDS = 0.05
REGEX_TOTAL_SECONDS = 0.25

_SLASH_FORM = regex.compile(r"^/(.+)/([A-Za-z]*)$", regex.DOTALL)
_FLAGS = {"i": regex.IGNORECASE, "m": regex.MULTILINE, "s": regex.DOTALL, "u": 0}


@lru_cache(maxsize=4096)
def compile_key(key: str, case_sensitive: bool) -> regex.Pattern[str] | None:
    """A regex key compiled (raw or ``/pattern/flags``), or None when it is invalid."""
    pattern, flags = key, 0
    slashed = _SLASH_FORM.match(key)
    if slashed is not None:
        pattern = slashed.group(1)
        for flag in slashed.group(2):
            if flag not in _FLAGS:
                return None
            flags |= _FLAGS[flag]
    if not case_sensitive:
        flags |= regex.IGNORECASE
    try:
        return regex.compile(pattern, flags)
    except (regex.error, ValueError, OverflowError):
        return None


@dataclass
class _Clock:
    """What is left of one activation's regex time."""

    deadline: float

    def search(self, pattern: regex.Pattern[str], text: str) -> bool:
        left = min(REGEX_SEARCH_SECONDS, self.deadline - time.monotonic())
        if left <= 0:
            return False
        try:
            return pattern.search(text, timeout=left) is not None
        except TimeoutError:
            return False


class _KeyIndex:
    """All substring keys of a set of entries in one Aho-Corasick automaton: one pass over a
    text finds every key it contains (overlapping ones too)."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self._automaton: ahocorasick.Automaton | None = None
        words = {k for k in keys if k}
        if words:
            self._automaton = ahocorasick.Automaton()
            for word in words:
                self._automaton.add_word(word, word)
            self._automaton.make_automaton()

    def hits(self, text: str) -> set[str]:
        if self._automaton is None or not text:
            return set()
        return {word for _, word in self._automaton.iter(text)}


class _Index:
    """A set of enabled entries prepared for scanning: their substring keys in automata (folded
    and as written), which entries each primary key can activate, and the entries checked
    every round (constant and regex ones). Built once per lorebook version (see
    `select_lore`)."""

    def __init__(self, entries: Iterable[LoreEntry]) -> None:
        self.entries = [e for e in entries if e.enabled]
        self.always: list[int] = []
        self.folded: dict[str, list[int]] = {}
        self.exact: dict[str, list[int]] = {}
        folded_all: list[str] = []
        exact_all: list[str] = []
        for index, entry in enumerate(self.entries):
            if entry.constant or entry.use_regex:
                self.always.append(index)
                continue
            if entry.case_sensitive:
                for key in entry.keys:
                    self.exact.setdefault(key, []).append(index)
                exact_all += _all_keys(entry)
            else:
                for key in entry.keys:
                    self.folded.setdefault(key.lower(), []).append(index)
                folded_all += (k.lower() for k in _all_keys(entry))
        self.folded_index = _KeyIndex(tuple(folded_all))
        self.exact_index = _KeyIndex(tuple(exact_all))


class _Scan:
    """The scanned text so far, the substring keys found in it, and the entries those keys
    can activate (so a round looks only at those, the regex and the constant ones)."""

    def __init__(self, index: _Index) -> None:
        self.index = index
        self.text = ""
        self.folded_hits: set[str] = set()
        self.exact_hits: set[str] = set()
        self.reached: set[int] = set()  # entries whose primary keys were found

    def add(self, text: str) -> None:
        """Scan ``text`` too (only the new text is searched for keys)."""
        self.text = f"{self.text}\n{text}" if self.text else text
        index = self.index
        for hits, found, owners in (
            (self.folded_hits, index.folded_index.hits(text.lower()), index.folded),
            (self.exact_hits, index.exact_index.hits(text), index.exact),
        ):
            for key in found - hits:
                self.reached.update(owners.get(key, ()))
            hits |= found

    def candidates(self, done: set[int]) -> list[int]:
        """Indexes of the entries that may activate now, in order."""
        return sorted(i for i in self.reached.union(self.index.always) if i not in done)


_BOOK_INDEXES: OrderedDict[tuple[int, datetime], _Index] = OrderedDict()
BOOK_INDEX_CACHE = 256


def _book_index(book: Lorebook) -> _Index:
    """The book's prepared entries, cached by (id, updated_at): every change to a book or one
    of its entries bumps ``updated_at``."""
    key = (book.id, book.updated_at)
    found = _BOOK_INDEXES.get(key)
    if found is None:
        found = _BOOK_INDEXES[key] = _Index(book.entries)
        if len(_BOOK_INDEXES) > BOOK_INDEX_CACHE:
            _BOOK_INDEXES.popitem(last=False)
    else:
        _BOOK_INDEXES.move_to_end(key)
    return found


def _all_keys(entry: LoreEntry) -> list[str]:
    return [*entry.keys, *entry.secondary_keys]


def _any_key(entry: LoreEntry, keys: Sequence[str], text: _Scan, clock: _Clock) -> bool:
    if entry.use_regex:
        for key in keys:
            pattern = compile_key(key, entry.case_sensitive)
            if pattern is not None and clock.search(pattern, text.text):
                return True
        return False
    if entry.case_sensitive:
        return any(key in text.exact_hits for key in keys)
    return any(key.lower() in text.folded_hits for key in keys)


def _matches(entry: LoreEntry, text: _Scan, clock: _Clock) -> bool:
    if not _any_key(entry, entry.keys, text, clock):
        return False
    if entry.selective and entry.secondary_keys:
        return _any_key(entry, entry.secondary_keys, text, clock)
    return True


def activate(
    entries: Iterable[LoreEntry],
    text: str,
    *,
    recursive: bool = False,
    regex_seconds: float = REGEX_TOTAL_SECONDS,
) -> list[LoreEntry]:
    """The entries ``text`` activates (before any budget), ordered by (insertion_order, id)."""
    return _activate(_Index(entries), text, recursive=recursive, regex_seconds=regex_seconds)


def _activate(
    index: _Index, text: str, *, recursive: bool, regex_seconds: float
) -> list[LoreEntry]:
    clock = _Clock(time.monotonic() + regex_seconds)
    pending = index.entries
    scan = _Scan(index)
    scan.add(text)
    done: set[int] = set()
    for round_ in range(MAX_RECURSION + 1 if recursive else 1):
        found = [
            i
            for i in scan.candidates(done)
            if pending[i].constant or _matches(pending[i], scan, clock)
        ]
        if not found:
            break
        done.update(found)
        if round_ < MAX_RECURSION and len(done) < len(pending):
            scan.add("\n".join(pending[i].content for i in found))
    return sorted((pending[i] for i in done), key=_order)


def _order(entry: LoreEntry) -> tuple[int, int]:
    return entry.insertion_order, entry.id


def fit_budget(
    entries: Sequence[LoreEntry],
    budget: int,
    *,
    estimate: Callable[[str], int] = estimate_tokens,
) -> list[LoreEntry]:
    """``entries`` (in insertion order) without the lowest-priority ones (at equal priority,
    the later ones) until their estimated tokens fit ``budget``; order kept."""
    costs = [estimate(e.content) for e in entries]
    total = sum(costs)
    dropped: set[int] = set()
    victims = sorted(range(len(entries)), key=lambda i: (entries[i].priority, -i))
    for index in victims:
        if total <= budget:
            break
        dropped.add(index)
        total -= costs[index]
    return [e for i, e in enumerate(entries) if i not in dropped]


@dataclass(frozen=True)
class LoreSelection:
    """The entries a prompt gets: ``before`` and ``after`` the character's profile."""

    entries: list[LoreEntry] = field(default_factory=list)

    @property
    def before(self) -> list[LoreEntry]:
        return [e for e in self.entries if e.position == "before_char"]

    @property
    def after(self) -> list[LoreEntry]:
        return [e for e in self.entries if e.position == "after_char"]

    @property
    def entry_ids(self) -> list[str]:
        """The inserted entries' ids as the API shows them."""
        return [str(e.id) for e in self.entries]


NO_LORE = LoreSelection()


def select_lore(
    books: Sequence[Lorebook],
    history: Sequence[str],
    *,
    regex_seconds: float = REGEX_TOTAL_SECONDS,
) -> LoreSelection:
    """The entries of ``books`` (in order: the character's, then the group's) that the
    conversation activates, each book within its budget. ``history`` is the texts of the
    conversation oldest first, ending with the new message."""
    chosen: list[LoreEntry] = []
    seen: set[int] = set()
    deadline = time.monotonic() + regex_seconds
    for book in books:
        if book.id in seen or not book.entries:
            continue
        seen.add(book.id)
        window = history[-(book.scan_depth + 1) :] if history else []
        left = max(0.0, deadline - time.monotonic())
        active = _activate(
            _book_index(book), "\n".join(window), recursive=book.recursive, regex_seconds=left
        )
        chosen += fit_budget(active, book.token_budget)
    return LoreSelection(chosen) if chosen else NO_LORE


def union_ids(selections: Iterable[LoreSelection]) -> list[str]:
    """The entry ids of several selections (a group turn's speakers), each once, in order."""
    return list(dict.fromkeys(i for s in selections for i in s.entry_ids))
