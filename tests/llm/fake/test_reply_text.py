"""The fake's replies: exact length, marked as the fake's, ending on a sentence boundary."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from llm.fake.content import FAKE_MARK, reply_text

MESSAGES = [
    {"role": "system", "content": "You are Old Tom, a retired sailor."},
    {"role": "user", "content": "Tell me about the lighthouse"},
]


@given(length=st.integers(min_value=60, max_value=2000), seed=st.integers(0, 2**64 - 1))
def test_reply_is_exact_marked_and_ends_on_a_sentence(length: int, seed: int) -> None:
    text = reply_text(MESSAGES, length, seed)
    assert len(text) == length
    assert text.startswith(FAKE_MARK + "*Old Tom ")
    assert text.endswith((".", "!", "?", "🗡.", "*")), text[-20:]
    assert not text.endswith(" ") and "  " not in text


def test_structured_text_values_are_marked_too() -> None:
    assert reply_text(MESSAGES, 80, 1).strip().startswith(FAKE_MARK)
