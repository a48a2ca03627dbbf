"""Helpers for driving the fake upstream over real HTTP: request bodies and an SSE splitter."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

AUTH = {"Authorization": "Bearer test-key"}
SYSTEM = {"role": "system", "content": "You are Elara Voss, the innkeeper of the Salt Lantern."}


def chat(user: str = "Tell me about the lighthouse", *, stream: bool = True, **extra: Any) -> dict:
    """A chat-completions request body."""
    return {
        "model": "test/model",
        "stream": stream,
        "messages": [dict(SYSTEM), {"role": "user", "content": user}],
        **extra,
    }


@dataclass
class Event:
    comment: str | None = None
    data: str | None = None

    @property
    def json(self) -> Any:
        assert self.data is not None
        return json.loads(self.data)


def parse_events(raw: str) -> list[Event]:
    """Split an SSE body into comment and data events (LF, CRLF or CR line endings)."""
    events = []
    for block in re.split(r"\r\n\r\n|\n\n|\r\r", raw):
        lines = re.split(r"\r\n|\n|\r", block)
        for line in lines:
            if line.startswith(":"):
                events.append(Event(comment=line[1:].strip()))
            elif line.startswith("data: "):
                events.append(Event(data=line[len("data: ") :]))
            else:
                assert line == "", f"unexpected SSE line {line!r}"
    return events


def content_of(events: list[Event]) -> str:
    """The concatenated delta contents of the data events."""
    text = ""
    for event in events:
        if event.data and event.data != "[DONE]":
            for choice in event.json.get("choices", []):
                text += choice["delta"].get("content") or ""
    return text
