"""Deterministic, in-character reply text derived from the request's messages.

The same messages always give the same text. Replies mention the character named in the system
prompt ("You are Elara Voss, ..."), pick up a word of the last user message, and contain multi-byte
UTF-8 (é, —, …, 龍, 🗡) so clients exercise characters split across network reads.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

_OPENERS = (
    "*{name} looks up from the ledger.* ",
    "*{name} sets down a chipped mug of café au lait.* ",
    "*{name} smiles — a little too knowingly.* ",
    "*{name} leans on the counter, eyes narrowed.* ",
)

SENTENCES = (
    "The rain over Saltmarsh has not stopped for three days.",
    "You ask about {topic}? Few dare to, these days.",
    "I once traded a map for a single 龍 scale, and I regret nothing.",
    "The naïve ones always ask the same question.",
    "Listen closely — the walls in this inn have ears.",
    "My grandmother said the old road leads to the sea; she was usually right.",
    "There is a price, of course… there always is.",
    "The blacksmith's daughter swears she saw lights on the hill.",
    "Coins speak every language, even the ones the élite pretend not to know.",
    "Sit, friend; the fire is warm and the night is long.",
    "I have heard whispers of {topic} from travellers who came from the north.",
    "Keep your blade close and your promises closer 🗡.",
    "The moon was red the night the king's ship went missing.",
    "Some doors are better left closed, señor.",
    "If you want the truth, you'll have to earn it.",
    "The old monk only says 「待て」 and walks away.",
)

DEFAULT_NAME = "The stranger"
DEFAULT_TOPIC = "that"

_NAME_MARKERS = re.compile(
    r"(?:\byou are|\byou're|\byou play|\bplaying|\bcharacter named|\bnamed"
    r"|\bname:|\bcharacter:)\s+",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W\d_][\w'’-]*")
_DIRECTIVE = re.compile(r"\[\[fake:[^\]]*\]\]")


def message_text(message: Mapping[str, Any]) -> str:
    """A message's text content (string content, or the text parts of a content list)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The text of the last ``user`` message ("" if none)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message)
    return ""


def seed_for(messages: Sequence[Mapping[str, Any]]) -> int:
    """A stable 64-bit seed from the messages (independent of PYTHONHASHSEED)."""
    encoded = json.dumps(messages, sort_keys=True, ensure_ascii=False, default=str).encode()
    return int.from_bytes(hashlib.blake2b(encoded, digest_size=8).digest(), "big")


def character_name(messages: Sequence[Mapping[str, Any]]) -> str | None:
    """The character named in a system prompt ("You are Elara Voss, ..."), if any."""
    for message in messages:
        if message.get("role") != "system":
            continue
        text = message_text(message)
        for marker in _NAME_MARKERS.finditer(text):
            words: list[str] = []
            position = marker.end()
            while len(words) < 4:
                word = _WORD.match(text, position)
                if word is None or not word.group()[0].isupper():
                    break
                words.append(word.group().rstrip("'’-"))
                position = word.end()
                if text[position : position + 1] != " ":
                    break
                position += 1
            if words:
                return " ".join(words)
    return None


def topic_of(text: str) -> str:
    """The longest word (4+ letters) of the user's message, directives removed."""
    words = [w for w in _WORD.findall(_DIRECTIVE.sub(" ", text)) if len(w) >= 4]
    return max(words, key=len) if words else DEFAULT_TOPIC


def sentences(rng: random.Random, count: int, *, topic: str = DEFAULT_TOPIC) -> str:
    """``count`` corpus sentences joined by spaces."""
    return " ".join(rng.choice(SENTENCES).format(topic=topic) for _ in range(count))


FAKE_MARK = "[fake] "
"""Every reply starts with this, so the fake's text is never mistaken for a model's."""

_FILLER_WORDS = ("indeed", "truly", "well", "aye", "so", "ah", "o")


def reply_text(messages: Sequence[Mapping[str, Any]], length: int, seed: int) -> str:
    """Exactly ``length`` characters of in-character reply for these messages.

    It starts with `FAKE_MARK` and, when ``length`` leaves room for the opener, ends on a
    sentence boundary: whole corpus sentences, then short words ("Aye.") to fill the rest.
    """
    if length <= 0:
        return ""
    rng = random.Random(seed)
    name = character_name(messages) or DEFAULT_NAME
    topic = topic_of(last_user_text(messages))
    text = FAKE_MARK + rng.choice(_OPENERS).format(name=name).rstrip()
    if len(text) + 3 > length:
        return (text + " " * length)[:length]
    while True:
        room = length - len(text)
        fitting = [
            sentence
            for sentence in (t.format(topic=topic) for t in SENTENCES)
            if len(sentence) + 1 == room or len(sentence) + 1 <= room - 3
        ]
        if not fitting:
            break
        text += " " + rng.choice(fitting)
    return text + _filler(length - len(text), rng)


def _filler(room: int, rng: random.Random) -> str:
    """``room`` characters (0 or at least 3) of " Word word." closing a reply."""
    if room == 0:
        return ""
    letters = room - 2  # the leading space and the final period
    words: list[str] = []
    while letters > 0:
        exact = [w for w in _FILLER_WORDS if len(w) == letters]
        word = exact[0] if exact else rng.choice(
            [w for w in _FILLER_WORDS if len(w) + 2 <= letters]
        )
        words.append(word)
        letters -= len(word) + (1 if letters > len(word) else 0)
    phrase = " ".join(words)
    return " " + phrase[:1].upper() + phrase[1:] + "."


def split_chunks(text: str, chunk_chars: int) -> list[str]:
    """Split text into pieces of ``chunk_chars`` characters (the last may be shorter)."""
    return [text[i : i + chunk_chars] for i in range(0, len(text), chunk_chars)]


def estimate_prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """A rough prompt token count: four characters per token, at least one."""
    return max(1, sum(len(message_text(m)) for m in messages) // 4)
