"""Ranking memories against a text, and choosing the memories a prompt carries.

Relevance is BM25 over the conversation's memories (the corpus: a conversation's memories are
few, so the ranking is computed here in Python, identically on SQLite and PostgreSQL). Text is
CJK-aware: a run of Chinese (or Japanese/Korean) characters gives its character bigrams (a lone
character gives itself), any other text its words, case-folded after NFKC normalisation (so
full-width Latin letters match ASCII ones). The score combines, as AI Town does, relevance
(normalised to the best match, weight ``RELEVANCE_WEIGHT``), importance (1–5 mapped to 0–1) and
recency (``RECENCY_DECAY`` to the power of the memory's position, newest first).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

from app.services.prompts import estimate_tokens
from storage.records import Memory

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_PARTS = re.compile(rf"([{_CJK}]+)|((?:(?![{_CJK}])[^\W_])+)")

BM25_K1 = 1.2
BM25_B = 0.75
RELEVANCE_WEIGHT = 3.0
IMPORTANCE_WEIGHT = 1.0
RECENCY_WEIGHT = 1.0
RECENCY_DECAY = 0.97
MEMORY_SHARE = 3
"""Memories other than the pinned ones get at most 1/MEMORY_SHARE of the prompt budget."""


def terms(text: str) -> list[str]:
    """The text's search terms: CJK character bigrams and case-folded words, in order."""
    found: list[str] = []
    for match in _PARTS.finditer(unicodedata.normalize("NFKC", text)):
        cjk, word = match.groups()
        if cjk is not None:
            if len(cjk) == 1:
                found.append(cjk)
            else:
                found.extend(cjk[i : i + 2] for i in range(len(cjk) - 1))
        else:
            found.append(word.casefold())
    return found


def newest_first(memories: Sequence[Memory]) -> list[Memory]:
    """The memories newest first (by creation, then id)."""
    return sorted(memories, key=lambda m: (m.created_at, m.id), reverse=True)


def relevance(memories: Sequence[Memory], query: str) -> dict[int, float]:
    """BM25 score of each memory (by id) for ``query``, the memories being the corpus."""
    wanted = set(terms(query))
    docs = {m.id: Counter(terms(m.content)) for m in memories}
    if not wanted or not docs:
        return dict.fromkeys(docs, 0.0)
    average = sum(sum(d.values()) for d in docs.values()) / len(docs) or 1.0
    frequency = Counter(t for d in docs.values() for t in wanted if t in d)
    idf = {t: math.log(1 + (len(docs) - frequency[t] + 0.5) / (frequency[t] + 0.5)) for t in wanted}
    scores: dict[int, float] = {}
    for memory_id, counts in docs.items():
        length = sum(counts.values())
        norm = BM25_K1 * (1 - BM25_B + BM25_B * length / average)
        scores[memory_id] = sum(
            idf[t] * counts[t] * (BM25_K1 + 1) / (counts[t] + norm) for t in wanted if t in counts
        )
    return scores


def rank(memories: Sequence[Memory], query: str) -> list[Memory]:
    """Every memory, best first: relevance to ``query`` with importance and recency."""
    ordered = newest_first(memories)
    scores = relevance(ordered, query)
    best = max(scores.values(), default=0.0)

    def score(position: int, memory: Memory) -> float:
        relevant = scores[memory.id] / best if best > 0 else 0.0
        return (
            RELEVANCE_WEIGHT * relevant
            + IMPORTANCE_WEIGHT * (min(max(memory.importance, 1), 5) - 1) / 4
            + RECENCY_WEIGHT * RECENCY_DECAY**position
        )

    scored = [(score(i, m), i, m) for i, m in enumerate(ordered)]
    scored.sort(key=lambda item: (-item[0], item[1]))  # equal scores: newer first
    return [m for _, _, m in scored]


def search(memories: Sequence[Memory], query: str | None, limit: int | None) -> list[Memory]:
    """What ``GET {conv}/memories`` lists: ranked against ``query``, else newest first."""
    found = rank(memories, query) if query else newest_first(memories)
    return found if limit is None else found[:limit]


def for_prompt(memories: Sequence[Memory], query: str, *, prompt_budget: int) -> list[Memory]:
    """The memories a prompt carries: every pinned one (oldest first), then the others
    ranked against ``query`` (the message answered) while they fit in their share of the
    prompt budget (estimated tokens)."""
    pinned = sorted((m for m in memories if m.pinned), key=lambda m: (m.created_at, m.id))
    room = prompt_budget // MEMORY_SHARE
    chosen: list[Memory] = []
    for memory in rank([m for m in memories if not m.pinned], query):
        cost = estimate_tokens(memory.content)
        if cost <= room:
            chosen.append(memory)
            room -= cost
    return pinned + chosen
