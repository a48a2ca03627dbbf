"""Byte-level Server-Sent Events framer (WHATWG "event stream" parsing).

Fed raw network chunks (``response.aiter_bytes()``), it returns whole events.
Lines end in LF, CR or CRLF, and a chunk may end anywhere: inside a UTF-8
character, or between the CR and the LF of one line ending. Splitting happens
on bytes (UTF-8 never encodes CR or LF inside a multi-byte character, and
U+2028/U+2029 are therefore not line breaks); text is decoded only once per
complete line. A leading byte-order mark is dropped. Comment lines are reported
as ``SSEComment`` so a caller can tell keep-alives from data.

The work per chunk is a few C-level ``bytes`` operations plus one small loop
over its complete lines, because the framer sits on the hot path of every stream.
"""

from __future__ import annotations

from typing import NamedTuple

_BOM = b"\xef\xbb\xbf"


class SSEEvent(NamedTuple):
    """A dispatched event: its type (``"message"`` by default), data, and last event id."""

    event: str
    data: str
    id: str


class SSEComment(NamedTuple):
    """A comment line (``: text``), such as OpenRouter's ``: OPENROUTER PROCESSING``."""

    text: str


class SSEDecoder:
    """Incremental event-stream parser; one instance per response body."""

    __slots__ = ("_tail", "_skip_lf", "_at_start", "_data", "_event", "_last_id", "retry")

    def __init__(self) -> None:
        self._tail = b""  # the incomplete last line (never contains CR or LF)
        self._skip_lf = False  # the previous chunk ended in CR: drop a leading LF
        self._at_start = True  # a BOM may still come
        self._data: list[bytes] = []
        self._event = b""
        self._last_id = ""
        self.retry: int | None = None  # the stream's last valid `retry:` field, in ms

    def feed(self, chunk: bytes) -> list[SSEEvent | SSEComment]:
        """Consume one chunk; return the events and comments it completed, in order."""
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        buf = self._tail + chunk if self._tail else chunk
        if self._at_start:
            if len(buf) < 3 and _BOM.startswith(buf):
                self._tail = buf
                return []
            self._at_start = False
            if buf.startswith(_BOM):
                buf = buf[3:]
        if b"\r" in buf:
            if buf.endswith(b"\r"):
                self._skip_lf = True
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buf.split(b"\n")
        self._tail = lines.pop()
        if not lines:
            return []
        return self._process(lines)

    def _process(self, lines: list[bytes]) -> list[SSEEvent | SSEComment]:
        out: list[SSEEvent | SSEComment] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    out.append(self._dispatch())
                    data = self._data
                else:
                    self._event = b""
                continue
            colon = line.find(b":")
            if colon == 0:
                out.append(SSEComment(line[1:].decode("utf-8", "replace").removeprefix(" ")))
                continue
            if colon < 0:
                name, value = line, b""
            else:
                name = line[:colon]
                value = (
                    line[colon + 2 :] if line[colon + 1 : colon + 2] == b" " else line[colon + 1 :]
                )
            if name == b"data":
                data.append(value)
            elif name == b"event":
                self._event = value
            elif name == b"id":
                if b"\0" not in value:
                    self._last_id = value.decode("utf-8", "replace")
            elif name == b"retry":
                if value.isdigit():
                    self.retry = int(value)
        return out

    def _dispatch(self) -> SSEEvent:
        data = self._data
        raw = data[0] if len(data) == 1 else b"\n".join(data)
        event = self._event.decode("utf-8", "replace") if self._event else "message"
        self._data = []
        self._event = b""
        return SSEEvent(event, raw.decode("utf-8", "replace"), self._last_id)

    @property
    def pending(self) -> bool:
        """Whether an incomplete event or line is buffered (the stream was cut mid-event)."""
        return bool(self._data or self._tail)
