"""Lorebook activation as a pure function: a table of rules, then properties (hypothesis)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.services.lore_activation import (
    MAX_RECURSION,
    activate,
    compile_key,
    fit_budget,
    select_lore,
    union_ids,
)
from app.services.prompts import estimate_tokens
from storage.records import Lorebook, LoreEntry

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def entry(entry_id: int = 1, *keys: str, **fields: Any) -> LoreEntry:
    base = LoreEntry(
        id=entry_id,
        lorebook_id=1,
        keys=list(keys),
        secondary_keys=[],
        selective=False,
        constant=False,
        enabled=True,
        case_sensitive=False,
        use_regex=False,
        content=f"content {entry_id}",
        insertion_order=100,
        priority=10,
        position="before_char",
        comment="",
    )
    return replace(base, **fields)


_BOOK_IDS = itertools.count(1_000)


def book(book_id: int, entries: list[LoreEntry], **fields: Any) -> Lorebook:
    """A lorebook; every call is a new version (prepared entries are cached per version)."""
    base = Lorebook(
        id=book_id * 1_000_000 + next(_BOOK_IDS),
        user_id=1,
        name=f"book {book_id}",
        description="",
        scan_depth=4,
        token_budget=512,
        recursive=False,
        entries=entries,
        created_at=NOW,
        updated_at=NOW,
    )
    return replace(base, **fields)


CASES: list[tuple[str, LoreEntry, str, bool]] = [
    ("substring", entry(1, "dragon"), "the dragons sleep", True),
    ("absent", entry(1, "dragon"), "the wyrm sleeps", False),
    ("case-insensitive by default", entry(1, "Dragon"), "a DRAGON!", True),
    ("case-sensitive", entry(1, "Dragon", case_sensitive=True), "a dragon", False),
    ("case-sensitive match", entry(1, "Dragon", case_sensitive=True), "a Dragon", True),
    ("chinese substring", entry(1, "长安"), "我们明天去长安城看看", True),
    ("chinese absent", entry(1, "长安"), "我们明天去洛阳", False),
    ("any of several keys", entry(1, "ship", "Gale"), "aboard the gale", True),
    ("empty key never matches", entry(1, ""), "anything", False),
    ("disabled never", entry(1, "dragon", enabled=False), "dragon", False),
    ("disabled constant never", entry(1, constant=True, enabled=False), "x", False),
    ("constant always", entry(1, constant=True), "nothing relevant", True),
    ("constant without text", entry(1, constant=True), "", True),
    (
        "selective needs a secondary key",
        entry(1, "king", selective=True, secondary_keys=["crown"]),
        "the king speaks",
        False,
    ),
    (
        "selective with a secondary key",
        entry(1, "king", selective=True, secondary_keys=["crown", "throne"]),
        "the king on his THRONE",
        True,
    ),
    (
        "selective secondary alone is not enough",
        entry(1, "king", selective=True, secondary_keys=["crown"]),
        "the crown",
        False,
    ),
    (
        "selective without secondary keys: primary decides",
        entry(1, "king", selective=True),
        "the king",
        True,
    ),
    (
        "secondary keys ignored when not selective",
        entry(1, "king", secondary_keys=["crown"]),
        "the king",
        True,
    ),
    ("regex raw", entry(1, r"storm(s)?\b", use_regex=True), "STORMS ahead", True),
    ("regex raw no match", entry(1, r"^storm", use_regex=True), "a storm", False),
    (
        "regex raw case-sensitive",
        entry(1, r"Storm", use_regex=True, case_sensitive=True),
        "storm",
        False,
    ),
    ("regex slash form", entry(1, "/sto+rm/", use_regex=True), "a Stooorm", True),
    (
        "regex slash i flag wins over case_sensitive",
        entry(1, "/Storm/i", use_regex=True, case_sensitive=True),
        "storm",
        True,
    ),
    (
        "regex slash case-sensitive without i",
        entry(1, "/Storm/", use_regex=True, case_sensitive=True),
        "storm",
        False,
    ),
    ("regex m flag", entry(1, "/^b$/m", use_regex=True), "a\nb\nc", True),
    ("regex without m", entry(1, "/^b$/", use_regex=True), "a\nb\nc", False),
    ("regex s flag", entry(1, "/a.b/s", use_regex=True), "a\nb", True),
    ("regex without s", entry(1, "/a.b/", use_regex=True), "a\nb", False),
    ("regex u flag", entry(1, "/é/u", use_regex=True), "café", True),
    ("regex unknown flag is invalid", entry(1, "/a/x", use_regex=True), "a", False),
    ("invalid regex never matches", entry(1, "(unclosed", use_regex=True), "(unclosed", False),
    ("substring keys are not regexes", entry(1, "a.c"), "abc", False),
    ("regex chinese", entry(1, "长安|洛阳", use_regex=True), "去洛阳", True),
    (
        "regex selective",
        entry(1, "/k.ng/", use_regex=True, selective=True, secondary_keys=["crown"]),
        "king crown",
        True,
    ),
]


@pytest.mark.parametrize(
    ("entry_", "text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_activation_table(entry_: LoreEntry, text: str, expected: bool) -> None:
    assert (activate([entry_], text) == [entry_]) is expected


def test_catastrophic_regex_times_out_as_no_match() -> None:
    evil = entry(1, r"(a+)+$", use_regex=True)
    plain = entry(2, "aaa")
    assert activate([evil, plain], "a" * 5_000 + "b", regex_seconds=0.2) == [plain]


def test_compile_key_caches_and_rejects() -> None:
    assert compile_key("/a/", False) is compile_key("/a/", False)
    assert compile_key("[", False) is None


def test_recursion_scans_activated_content_at_most_three_more_times() -> None:
    chain = [
        entry(1, "alpha", content="beta"),
        entry(2, "beta", content="gamma"),
        entry(3, "gamma", content="delta"),
        entry(4, "delta", content="epsilon"),
        entry(5, "epsilon", content="zeta"),
    ]
    assert [e.id for e in activate(chain, "alpha")] == [1]
    assert [e.id for e in activate(chain, "alpha", recursive=True)] == [1, 2, 3, 4]
    assert MAX_RECURSION == 3


def test_recursion_each_entry_once_and_selective_across_content() -> None:
    entries = [
        entry(1, "alpha", content="crown and alpha"),
        entry(2, "king", selective=True, secondary_keys=["crown"], content="alpha"),
    ]
    assert [e.id for e in activate(entries, "the king and alpha", recursive=True)] == [1, 2]
    assert [e.id for e in activate(entries, "the king and alpha")] == [1]


def test_activation_order_is_insertion_order_then_id() -> None:
    entries = [
        entry(3, "x", insertion_order=5),
        entry(1, "x", insertion_order=5),
        entry(2, "x", insertion_order=1),
    ]
    assert [e.id for e in activate(entries, "x")] == [2, 1, 3]


def test_budget_drops_lowest_priority_first_then_later_ones() -> None:
    big = "x" * 300  # 104 tokens
    entries = [
        entry(1, content=big, priority=5),
        entry(2, content=big, priority=1),
        entry(3, content=big, priority=5),
        entry(4, content=big, priority=1),
    ]
    assert [e.id for e in fit_budget(entries, 4 * 104)] == [1, 2, 3, 4]
    assert [e.id for e in fit_budget(entries, 3 * 104)] == [1, 2, 3]
    assert [e.id for e in fit_budget(entries, 2 * 104)] == [1, 3]
    assert [e.id for e in fit_budget(entries, 104)] == [1]
    assert fit_budget(entries, 103) == []


def test_select_lore_orders_books_and_positions_and_windows() -> None:
    character_book = book(
        2,
        [entry(5, "sword", insertion_order=9), entry(6, "sword", position="after_char")],
    )
    group_book = book(1, [entry(1, "sword", insertion_order=0)])
    chosen = select_lore([character_book, group_book, character_book], ["sword"])
    assert chosen.entry_ids == ["5", "6", "1"]
    assert [e.id for e in chosen.before] == [5, 1] and [e.id for e in chosen.after] == [6]

    shallow = book(3, [entry(7, "old")], scan_depth=1)
    assert select_lore([shallow], ["old", "a", "new"]).entry_ids == []
    assert select_lore([shallow], ["old", "new"]).entry_ids == ["7"]
    assert select_lore([shallow], []).entry_ids == []
    assert union_ids([chosen, select_lore([shallow], ["old"])]) == ["5", "6", "1", "7"]


# ---- properties

KEYS = st.sampled_from(["dragon", "King", "长安", "storm", "Gale", "/sto+rm/i", r"k\w+g"])
WORDS = st.lists(
    st.sampled_from(["dragon", "king", "长安", "storm", "gale", "crown", "the", "a", "sea"]),
    max_size=8,
).map(" ".join)


@st.composite
def entries_strategy(draw: st.DrawFn) -> list[LoreEntry]:
    count = draw(st.integers(min_value=0, max_value=12))
    out = []
    for i in range(count):
        out.append(
            entry(
                i + 1,
                *draw(st.lists(KEYS, min_size=1, max_size=3)),
                secondary_keys=draw(st.lists(KEYS, max_size=2)),
                selective=draw(st.booleans()),
                constant=draw(st.integers(0, 9)) == 0,
                enabled=draw(st.integers(0, 9)) != 0,
                case_sensitive=draw(st.booleans()),
                use_regex=draw(st.booleans()),
                content=draw(WORDS) + " " + "x" * draw(st.integers(0, 400)),
                insertion_order=draw(st.integers(-5, 5)),
                priority=draw(st.integers(0, 3)),
                position=draw(st.sampled_from(["before_char", "after_char"])),
            )
        )
    return out


@settings(max_examples=60, deadline=None)
@given(
    entries=entries_strategy(),
    history=st.lists(WORDS, min_size=1, max_size=8),
    unrelated=st.sampled_from(["hello there", "nothing to see", "你好", ""]),
    depth=st.integers(1, 6),
    recursive=st.booleans(),
)
def test_an_unrelated_message_never_deactivates_an_entry_within_scan_depth(
    entries: list[LoreEntry], history: list[str], unrelated: str, depth: int, recursive: bool
) -> None:
    """With the history within scan depth, adding a message that matches no key keeps every
    activated entry active (before the budget)."""
    lore = book(1, entries, scan_depth=depth, recursive=recursive, token_budget=10**9)
    history = history[-depth:]
    before = set(select_lore([lore], history).entry_ids)
    after = set(select_lore([lore], [*history, unrelated]).entry_ids)
    assert before <= after


@settings(max_examples=60, deadline=None)
@given(
    entries=entries_strategy(),
    history=st.lists(WORDS, min_size=1, max_size=6),
    budget=st.integers(0, 600),
    recursive=st.booleans(),
)
def test_the_budget_is_never_exceeded(
    entries: list[LoreEntry], history: list[str], budget: int, recursive: bool
) -> None:
    lore = book(1, entries, token_budget=budget, recursive=recursive)
    chosen = select_lore([lore], history).entries
    assert sum(estimate_tokens(e.content) for e in chosen) <= budget
    active = activate(entries, "\n".join(history[-5:]), recursive=recursive)
    assert {e.id for e in chosen} <= {e.id for e in active}
    # nothing dropped while a lower-priority entry stayed
    dropped = [e for e in active if e not in chosen]
    if dropped and chosen:
        assert max(e.priority for e in dropped) <= min(e.priority for e in chosen)
