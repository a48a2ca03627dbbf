"""Memory ranking: CJK bigrams and words, BM25 with importance and recency, the prompt's share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.services.memory_rank import for_prompt, rank, search, terms
from app.services.prompts import estimate_tokens
from storage.records import Memory

START = datetime(2026, 1, 1, tzinfo=UTC)


def memory(i: int, content: str, importance: int = 3, *, pinned: bool = False) -> Memory:
    return Memory(
        id=i,
        conversation_id=1,
        character_id=None,
        kind="long_term",
        content=content,
        importance=importance,
        created_at=START + timedelta(minutes=i),
        pinned=pinned,
    )


def test_terms_are_cjk_bigrams_and_folded_words() -> None:
    assert terms("我的盔甲 Heavy ARMOR, ｋｎｉｇｈｔ!") == [
        "我的",
        "的盔",
        "盔甲",
        "heavy",
        "armor",
        "knight",
    ]
    assert terms("甲") == ["甲"]
    assert terms("  ,.!") == []


def test_relevance_outweighs_importance_and_recency() -> None:
    items = [memory(0, "一副盔甲", importance=1)] + [
        memory(i, f"头盔和甲板，第{i}天", importance=5) for i in range(1, 50)
    ]
    assert rank(items, "盔甲在哪里")[0].id == 0
    # without a match: importance, then recency
    assert [m.id for m in rank(items, "")[:2]] == [49, 48]
    assert [m.id for m in search(items, None, 3)] == [49, 48, 47]


def test_prompt_takes_every_pinned_then_the_best_within_the_share() -> None:
    pinned = memory(0, "pinned " * 200, importance=1, pinned=True)  # over the share: still in
    items = [pinned] + [memory(i, f"note number {i} about apples") for i in range(1, 40)]
    chosen = for_prompt(items, "note 7", prompt_budget=300)
    assert chosen[0] is pinned
    rest = chosen[1:]
    assert rest[0].id == 7
    assert sum(estimate_tokens(m.content) for m in rest) <= 300 // 3
    assert len(rest) < 39
