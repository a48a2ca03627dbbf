"""Who speaks in a group turn: the strategies' semantics as pure functions.

Every function takes a `Situation` (the members, the group's steering fields and what was said
last) and, when it needs chance, a `RandomSource` (a `random.Random`, or a fake in tests), and
returns character ids in speaking order. Muted members are never chosen. The moderator's LLM
call and its fallbacks live in `app.services.groups`; `moderator_candidates` is what it may
choose from.

- natural: members named in the last message (case-insensitive substring match on names, in
  member order), then each other member by a talkativeness roll (`random() < talkativeness`)
  in shuffled order; if nobody was chosen, one random member with talkativeness > 0. The last
  speaker is never chosen again unless `allow_self_responses` (see `banned`).
- pooled: one random member who has not spoken since the last user message; if all have, one
  of the others than the last speaker.
- round robin: the members in listed order, starting after the last member, in listed order,
  of the previous turn's speakers; muted members are skipped.
- all: every member that is not muted (not capped: "all" means all).
- manual: nobody (only `speaker_ids` make anyone speak).

Every strategy but "all" is capped at the group's `max_speakers` (`Situation.limit`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

DEFAULT_TALKATIVENESS = 0.5


class RandomSource(Protocol):
    """The randomness the strategies use (`random.Random` satisfies it)."""

    def random(self) -> float: ...

    def shuffle(self, x: list[int]) -> None: ...

    def choice(self, seq: Sequence[int]) -> int: ...


@dataclass(frozen=True)
class LastMessage:
    """The newest message of the conversation (failed replies left out)."""

    role: Literal["user", "assistant"]
    character_id: int | None
    content: str


@dataclass(frozen=True)
class Situation:
    """What a strategy decides on."""

    members: Sequence[tuple[int, str]]  # (id, name) of the present members, in listed order
    limit: int  # max_speakers
    muted: frozenset[int] = frozenset()
    talkativeness: Mapping[int, float] = field(default_factory=dict)  # missing: the default
    allow_self_responses: bool = False
    last: LastMessage | None = None
    spoken_since_user: Sequence[int] = ()  # replies' speakers since the last user message
    previous_speakers: Sequence[int] = ()  # the previous turn's speakers

    @property
    def member_ids(self) -> list[int]:
        return [member for member, _ in self.members]

    def talkative(self, member: int) -> float:
        return self.talkativeness.get(member, DEFAULT_TALKATIVENESS)

    @property
    def last_speaker(self) -> int | None:
        """The character who said the last message (None when it was the user's)."""
        if self.last is None or self.last.role != "assistant":
            return None
        return self.last.character_id


def banned(s: Situation) -> int | None:
    """The member who may not be chosen now: the last speaker, unless self responses are
    allowed (the user's message as the last one bans nobody)."""
    return None if s.allow_self_responses else s.last_speaker


def unmuted(s: Situation) -> list[int]:
    """The members a strategy may choose, in listed order."""
    return [m for m in s.member_ids if m not in s.muted]


def moderator_candidates(s: Situation) -> list[int]:
    """Whom the moderator may choose: unmuted members, not the banned last speaker."""
    ban = banned(s)
    return [m for m in unmuted(s) if m != ban]


def natural(s: Situation, rng: RandomSource) -> list[int]:
    """Mentioned members, then talkativeness rolls, else one random talkative member."""
    allowed = moderator_candidates(s)
    chosen: list[int] = []
    if s.last is not None:
        text = s.last.content.casefold()
        chosen = [m for m, name in s.members if m in allowed and name and name.casefold() in text]
    others = [m for m in allowed if m not in chosen]
    rng.shuffle(others)
    chosen += [m for m in others if rng.random() < s.talkative(m)]
    if not chosen:
        pool = [m for m in allowed if s.talkative(m) > 0]
        if pool:
            chosen = [rng.choice(pool)]
    return chosen[: s.limit]


def pooled(s: Situation, rng: RandomSource) -> list[int]:
    """One member who has not spoken since the user's last message (else anyone but the
    last speaker)."""
    candidates = unmuted(s)
    spoke = set(s.spoken_since_user)
    pool = [m for m in candidates if m not in spoke]
    if not pool:
        pool = [m for m in candidates if m != s.last_speaker]
    if not pool:
        return []
    return [rng.choice(pool)]


def rotation(s: Situation) -> list[int]:
    """Round robin over the listed members (muted ones skipped)."""
    ordered = round_robin(s.member_ids, s.previous_speakers, len(s.members))
    return [m for m in ordered if m not in s.muted][: s.limit]


def everyone(s: Situation) -> list[int]:
    """Every unmuted member, in listed order."""
    return unmuted(s)


def round_robin(
    member_ids: Sequence[int], previous_speakers: Sequence[int], count: int
) -> list[int]:
    """`count` members in listed order, starting after the last member, in listed order, of
    the previous turn's speakers (deterministic, whichever reply finished last)."""
    if not member_ids:
        return []
    start = 0
    spoke = [i for i, member in enumerate(member_ids) if member in set(previous_speakers)]
    if spoke:
        start = (spoke[-1] + 1) % len(member_ids)
    ordered = list(member_ids[start:]) + list(member_ids[:start])
    return ordered[: max(0, min(count, len(ordered)))]
