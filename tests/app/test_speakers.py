"""The group strategies' semantics, by table (pure functions, a scripted random source)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.services.speakers import (
    LastMessage,
    Situation,
    everyone,
    moderator_candidates,
    natural,
    pooled,
    rotation,
)

MEMBERS = [(1, "Mira"), (2, "Bram"), (3, "Cole"), (4, "Old Dana")]


@dataclass
class Scripted:
    """A random source whose rolls, shuffles and choices are given in advance."""

    rolls: list[float] = field(default_factory=list)
    reverse: bool = False  # shuffle = reverse (else keep the order)
    pick: int = 0  # choice = seq[pick % len(seq)]
    shuffled: list[list[int]] = field(default_factory=list)
    offered: list[list[int]] = field(default_factory=list)

    def random(self) -> float:
        return self.rolls.pop(0)

    def shuffle(self, x: list[int]) -> None:
        if self.reverse:
            x.reverse()
        self.shuffled.append(list(x))

    def choice(self, seq: Sequence[int]) -> int:
        self.offered.append(list(seq))
        return seq[self.pick % len(seq)]


def user(text: str) -> LastMessage:
    return LastMessage("user", None, text)


def said(character_id: int, text: str) -> LastMessage:
    return LastMessage("assistant", character_id, text)


def situation(**fields: object) -> Situation:
    base: dict[str, object] = {"members": MEMBERS, "limit": 4}
    return Situation(**(base | fields))  # type: ignore[arg-type]


def test_natural_by_table() -> None:
    # (situation fields, rolls, reverse shuffle, expected)
    table: list[tuple[dict[str, object], list[float], bool, list[int]]] = [
        # named (any case, substring, member order), then rolls in shuffled order
        ({"last": user("cole and MIRA?")}, [0.9, 0.9], False, [1, 3]),
        ({"last": user("cole and MIRA?")}, [0.1, 0.9], False, [1, 3, 2]),
        ({"last": user("cole and MIRA?")}, [0.1, 0.9], True, [1, 3, 4]),
        ({"last": user("old dana")}, [0.9] * 3, False, [4]),
        # talkativeness: 0 never, 1 always; the default is 0.5
        (
            {"last": user("hi"), "talkativeness": {1: 0.0, 2: 1.0}},
            [0.0, 0.0, 0.6, 0.4],
            False,
            [2, 4],
        ),
        # nobody named, nobody rolled: one random member with talkativeness > 0
        ({"last": user("hi"), "talkativeness": {1: 0.0}}, [0.9] * 4, False, [2]),
        ({"last": user("hi"), "talkativeness": {1: 0, 2: 0, 3: 0, 4: 0}}, [0.9] * 4, False, []),
        # the last speaker is not chosen again, even when named, unless allowed
        ({"last": said(2, "I, Bram, and Mira")}, [0.9, 0.9], False, [1]),
        (
            {"last": said(2, "I, Bram, and Mira"), "allow_self_responses": True},
            [0.9] * 2,
            False,
            [1, 2],
        ),
        ({"last": said(2, "hm"), "talkativeness": {1: 0, 3: 0, 4: 0}}, [0.9] * 3, False, []),
        # muted members are never chosen, not even when named
        ({"last": user("Mira, Bram"), "muted": frozenset({1})}, [0.9] * 2, False, [2]),
        ({"last": user("x"), "muted": frozenset({1, 2, 3, 4})}, [], False, []),
        # capped at max_speakers
        ({"last": user("Mira Bram Cole"), "limit": 2}, [0.9], False, [1, 2]),
        ({"last": user("hi"), "limit": 1}, [0.1, 0.1, 0.1, 0.1], False, [1]),
        # no last message: rolls only
        ({}, [0.9, 0.1, 0.9, 0.9], False, [2]),
    ]
    for fields, rolls, reverse, expected in table:
        rng = Scripted(rolls=list(rolls), reverse=reverse)
        assert natural(situation(**fields), rng) == expected, fields
        assert not rng.rolls, fields  # one roll per unnamed, allowed member


def test_natural_fallback_draws_from_talkative_members() -> None:
    rng = Scripted(rolls=[0.99] * 3, pick=1)
    s = situation(last=said(1, "..."), talkativeness={3: 0.0})
    assert natural(s, rng) == [4]
    assert rng.offered == [[2, 4]]  # not the last speaker, not the silent one


def test_pooled_by_table() -> None:
    # (situation fields, pick, expected, offered pool)
    table: list[tuple[dict[str, object], int, list[int], list[int]]] = [
        ({"last": user("hi")}, 0, [1], [1, 2, 3, 4]),
        ({"last": said(3, "x"), "spoken_since_user": [1, 3]}, 1, [4], [2, 4]),
        # everyone has spoken: anyone but the last speaker
        ({"last": said(3, "x"), "spoken_since_user": [1, 2, 3, 4]}, 2, [4], [1, 2, 4]),
        ({"last": said(3, "x"), "spoken_since_user": [2, 1], "muted": frozenset({4})}, 0, [3], [3]),
        (
            {"last": said(3, "x"), "spoken_since_user": [1, 2, 3], "muted": frozenset({4})},
            0,
            [1],
            [1, 2],
        ),
    ]
    for fields, pick, expected, offered in table:
        rng = Scripted(pick=pick)
        assert pooled(situation(**fields), rng) == expected, fields
        assert rng.offered == [offered], fields
    assert pooled(situation(muted=frozenset({1, 2, 3, 4})), Scripted()) == []


def test_rotation_all_and_moderator_candidates_by_table() -> None:
    table = [
        ({"previous_speakers": [], "limit": 2}, [1, 2]),
        ({"previous_speakers": [2], "limit": 2}, [3, 4]),
        ({"previous_speakers": [4, 1], "limit": 1}, [1]),  # last in listed order: 4
        ({"previous_speakers": [2], "limit": 2, "muted": frozenset({3})}, [4, 1]),
        ({"previous_speakers": [3], "limit": 4, "muted": frozenset({1})}, [4, 2, 3]),
    ]
    for fields, expected in table:
        assert rotation(situation(**fields)) == expected, fields
    assert everyone(situation(limit=1, muted=frozenset({2}))) == [1, 3, 4]
    assert moderator_candidates(situation(last=said(2, "x"), muted=frozenset({4}))) == [1, 3]
    assert moderator_candidates(situation(last=user("x"), muted=frozenset({4}))) == [1, 2, 3]
    allowed = situation(last=said(2, "x"), allow_self_responses=True)
    assert moderator_candidates(allowed) == [1, 2, 3, 4]


def test_random_random_is_a_random_source() -> None:
    s = situation(last=user("hi"), limit=2)
    assert natural(s, random.Random(7)) == natural(s, random.Random(7))
    assert pooled(s, random.Random(3)) == pooled(s, random.Random(3))
