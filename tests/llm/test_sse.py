"""The SSE framer: WHATWG vectors, and any chunking gives the same events."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm.sse import SSEComment, SSEDecoder, SSEEvent


def feed_all(chunks: list[bytes]) -> list[SSEEvent | SSEComment]:
    decoder = SSEDecoder()
    out: list[SSEEvent | SSEComment] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    return out


def ev(data: str, event: str = "message", id: str = "") -> SSEEvent:
    return SSEEvent(event, data, id)


VECTORS: list[tuple[str, bytes, list[SSEEvent | SSEComment]]] = [
    ("lf", b"data: a\n\n", [ev("a")]),
    ("cr", b"data: a\r\r", [ev("a")]),
    ("crlf", b"data: a\r\n\r\n", [ev("a")]),
    ("mixed endings", b"data: a\rdata: b\r\n\ndata: c\n\r", [ev("a\nb"), ev("c")]),
    ("multi-line data", b"data: x\ndata:y\ndata:  z\n\n", [ev("x\ny\n z")]),
    ("no space after colon", b"data:a\n\n", [ev("a")]),
    ("field without colon", b"data\n\n", [ev("")]),
    ("empty data twice", b"data\ndata\n\n", [ev("\n")]),
    ("comment", b": OPENROUTER PROCESSING\n\n", [SSEComment("OPENROUTER PROCESSING")]),
    ("comment no space", b":ping\n", [SSEComment("ping")]),
    ("bare colon", b":\n", [SSEComment("")]),
    ("comment between data", b"data: a\n: hi\ndata: b\n\n", [SSEComment("hi"), ev("a\nb")]),
    ("event type", b"event: error\ndata: {}\n\n", [ev("{}", event="error")]),
    ("event without data", b"event: x\n\ndata: y\n\n", [ev("y")]),
    ("id persists", b"id: 7\ndata: a\n\ndata: b\n\n", [ev("a", id="7"), ev("b", id="7")]),
    ("id with nul ignored", b"id: 1\nid: 2\x00\ndata: a\n\n", [ev("a", id="1")]),
    ("unknown field", b"foo: bar\ndata: a\n\n", [ev("a")]),
    ("leading bom", b"\xef\xbb\xbfdata: a\n\n", [ev("a")]),
    ("only first bom", b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\n", []),
    ("u2028 not a break", "data: a\u2028b\u2029c\x85d\n\n".encode(), [ev("a\u2028b\u2029c\x85d")]),
    ("utf8", "data: héllo 世界 🎉\n\n".encode(), [ev("héllo 世界 🎉")]),
    ("unterminated event dropped", b"data: a\n\ndata: b\n", [ev("a")]),
    ("unterminated line dropped", b"data: a", []),
    ("done", b"data: [DONE]\n\n", [ev("[DONE]")]),
    ("space in field name", b"data : a\n\n", []),
]


@pytest.mark.parametrize(
    ("stream", "expected"), [v[1:] for v in VECTORS], ids=[v[0] for v in VECTORS]
)
def test_vectors_whole_and_bytewise(stream: bytes, expected: list[SSEEvent | SSEComment]) -> None:
    assert feed_all([stream]) == expected
    assert feed_all([stream[i : i + 1] for i in range(len(stream))]) == expected


def test_cr_and_lf_in_separate_chunks_are_one_line_ending() -> None:
    assert feed_all([b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]) == [ev("a\nb")]


def test_utf8_character_split_across_chunks() -> None:
    raw = "data: 世\n\n".encode()
    assert feed_all([raw[:7], raw[7:8], raw[8:]]) == [ev("世")]


def test_retry_field_and_pending() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"retry: 150\nretry: x\ndata: a") == []
    assert decoder.retry == 150
    assert decoder.pending
    assert decoder.feed(b"\n\n") == [ev("a")]
    assert not decoder.pending


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def reference_parse(stream: bytes) -> list[SSEEvent | SSEComment]:
    """A literal transcription of the WHATWG algorithm over the decoded text."""
    text = stream.decode("utf-8", "replace")
    text = text.removeprefix("\ufeff")
    lines = _LINE_BREAK.split(text)
    lines.pop()  # the incomplete last line (or "" after a final line break) is never processed
    out: list[SSEEvent | SSEComment] = []
    data, event, last_id = "", "", ""
    for line in lines:
        if line == "":
            if data == "":
                event = ""
                continue
            out.append(SSEEvent(event or "message", data.removesuffix("\n"), last_id))
            data, event = "", ""
        elif line.startswith(":"):
            out.append(SSEComment(line[1:].removeprefix(" ")))
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data += value + "\n"
            elif name == "event":
                event = value
            elif name == "id" and "\0" not in value:
                last_id = value
    return out


_pieces = st.sampled_from(
    [
        b"data",
        b"data:",
        b"data: ",
        b"event:",
        b"id:",
        b":",
        b" ",
        b"x",
        b'{"a":1}',
        b"\n",
        b"\r",
        b"\r\n",
        b"\xef\xbb\xbf",
        "é世🎉\u2028".encode(),
        b"\x00",
        b"[DONE]",
        b"retry: 5",
    ]
)
streams = st.lists(_pieces, max_size=40).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(stream=streams, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_any_chunking_gives_the_same_events(stream: bytes, cuts: list[int]) -> None:
    points = sorted({c for c in cuts if c <= len(stream)})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    whole = feed_all([stream])
    assert feed_all(chunks) == whole
    assert whole == reference_parse(stream)
