"""Conversation export and import formats: FastNPC's tree JSON and SillyTavern's chat JSONL.

Pure functions (no I/O): parsing validates everything before anything is
stored, and raises ``InvalidRequest`` (400) with the reason.

* ``fastnpc``: ``{"format": "fastnpc-conversation", "version": 1, "messages":
  [Message...], "active_leaf_id"}``; every message of the tree, parents before
  children (the export's id order).
* ``jsonl``: SillyTavern's chat file for the active path: a header line, then one
  line per message with ``name``, ``is_user``, ``mes`` and ``send_date``; a reply's
  alternatives travel as SillyTavern's ``swipes``/``swipe_id`` (imported as siblings).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from app.errors import InvalidRequest
from app.views import iso, message_view, parse_id
from storage.records import Message, MessageRole, MessageStatus
from storage.tree import NewMessage

FORMAT_NAME = "fastnpc-conversation"
FORMAT_VERSION = 1
MAX_IMPORTED_CONTENT = 100_000
_STATUSES = ("complete", "interrupted", "error")
_ST_DATE_FORMATS = ("%B %d, %Y %I:%M%p", "%B %d, %Y %I:%M %p", "%Y-%m-%d @%Hh %Mm %Ss %fms")


@dataclass(frozen=True)
class Speakers:
    """Who may speak in the conversation being imported or exported.

    ``character_id``: a one-to-one conversation's character (its replies are
    his); ``members``: a group's characters by id. Names are for JSONL.
    """

    user_name: str
    title: str  # the character's or the group's name
    character_id: int | None
    members: Mapping[int, str]


@dataclass(frozen=True)
class ParsedTree:
    items: list[NewMessage]
    active: int | None  # index of the active leaf in ``items``


# ---- export


def export_tree(tree: Sequence[Message], active_leaf_id: int | None) -> dict[str, Any]:
    """The ``fastnpc`` document of a whole tree."""
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "messages": [message_view(m) for m in tree],
        "active_leaf_id": None if active_leaf_id is None else str(active_leaf_id),
    }


def export_jsonl(
    path: Sequence[Message],
    speakers: Speakers,
    created_at: datetime,
    alternatives: Mapping[int, Sequence[Message]] | None = None,
) -> str:
    """The active path as SillyTavern chat JSONL (header line first; one line each).

    ``alternatives`` maps a path message's id to all its assistant siblings
    (itself included, in creation order): they become SillyTavern's ``swipes``
    with ``swipe_id`` the path message's position.
    """
    header = {
        "user_name": speakers.user_name,
        "character_name": speakers.title,
        "create_date": iso(created_at),
        "chat_metadata": {},
    }
    lines: list[dict[str, Any]] = [header]
    for message in path:
        is_user = message.role == "user"
        name = speakers.user_name
        if not is_user:
            name = speakers.members.get(message.character_id or -1, speakers.title)
        line: dict[str, Any] = {
            "name": name,
            "is_user": is_user,
            "is_system": False,
            "send_date": iso(message.created_at),
            "mes": message.content,
            "extra": {},
        }
        swipes = (alternatives or {}).get(message.id, [])
        if not is_user and len(swipes) > 1:
            line["swipes"] = [m.content for m in swipes]
            line["swipe_id"] = [m.id for m in swipes].index(message.id)
        lines.append(line)
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)


# ---- import


def parse_tree(body: bytes, speakers: Speakers, *, now: datetime) -> ParsedTree:
    """Validate a ``fastnpc`` document; the messages to store, parents first."""
    document = _json(body)
    if not isinstance(document, dict):
        raise _invalid("the document must be a JSON object")
    if document.get("format") != FORMAT_NAME:
        raise _invalid(f"`format` must be {FORMAT_NAME!r}")
    if document.get("version") != FORMAT_VERSION or isinstance(document.get("version"), bool):
        raise _invalid(f"`version` must be {FORMAT_VERSION}")
    raw_messages = document.get("messages")
    if not isinstance(raw_messages, list):
        raise _invalid("`messages` must be a list")
    index: dict[str, int] = {}
    items: list[NewMessage] = []
    for position, raw in enumerate(raw_messages):
        where = f"messages[{position}]"
        if not isinstance(raw, dict):
            raise _invalid(f"{where} must be an object")
        message_id = raw.get("id")
        if not isinstance(message_id, str) or not message_id:
            raise _invalid(f"{where}.id must be a non-empty string")
        if message_id in index:
            raise _invalid(f"{where}.id {message_id!r} appears twice")
        parent_raw = raw.get("parent_id")
        if parent_raw is not None and (not isinstance(parent_raw, str) or parent_raw not in index):
            raise _invalid(f"{where}.parent_id must name an earlier message or be null")
        role = _role(raw.get("role"), where)
        status = raw.get("status", "complete")
        if status not in _STATUSES:
            raise _invalid(f"{where}.status must be one of {', '.join(_STATUSES)}")
        model = raw.get("model")
        if model is not None and not isinstance(model, str):
            raise _invalid(f"{where}.model must be a string or null")
        items.append(
            NewMessage(
                role=role,
                content=_content(raw.get("content"), where),
                status=cast(MessageStatus, status),
                parent=None if parent_raw is None else index[parent_raw],
                character_id=_speaker_by_id(raw.get("character_id"), role, speakers, where),
                created_at=_timestamp(raw.get("created_at"), where, default=now),
                edited_at=_optional_timestamp(raw.get("edited_at"), f"{where}.edited_at"),
                model=model if role == "assistant" else None,
            )
        )
        index[message_id] = position
    leaf_raw = document.get("active_leaf_id")
    if leaf_raw is None:
        active = len(items) - 1 if items else None
    elif isinstance(leaf_raw, str) and leaf_raw in index:
        active = index[leaf_raw]
    else:
        raise _invalid("`active_leaf_id` must name one of the messages")
    return ParsedTree(items, active)


def parse_jsonl(body: bytes, speakers: Speakers, *, now: datetime) -> ParsedTree:
    """Validate a SillyTavern chat JSONL file; one path of messages, oldest first."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid("the body must be UTF-8") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise _invalid("the file is empty (a header line is required)")
    header = _json(lines[0].encode(), where="line 1")
    if not isinstance(header, dict) or "mes" in header:
        raise _invalid("line 1 must be the chat header object")
    items: list[NewMessage] = []
    active: int | None = None
    for number, line in enumerate(lines[1:], start=2):
        where = f"line {number}"
        raw = _json(line.encode(), where=where)
        if not isinstance(raw, dict):
            raise _invalid(f"{where} must be an object")
        is_user = raw.get("is_user")
        if not isinstance(is_user, bool):
            raise _invalid(f"{where}: `is_user` must be true or false")
        name = raw.get("name")
        if not isinstance(name, str):
            raise _invalid(f"{where}: `name` must be a string")
        role: MessageRole = "user" if is_user else "assistant"
        content = _content(raw.get("mes"), f"{where}: `mes`")
        texts, chosen = [content], 0
        if not is_user and "swipes" in raw:
            texts, chosen = _swipes(raw, content, where)
        parent = active
        for position, text in enumerate(texts):  # alternatives (swipes) are siblings
            items.append(
                NewMessage(
                    role=role,
                    content=text,
                    status="complete",
                    parent=parent,
                    character_id=None if is_user else _speaker_by_name(name, speakers, where),
                    created_at=_send_date(raw.get("send_date"), where, default=now),
                )
            )
            if position == chosen:
                active = len(items) - 1
    return ParsedTree(items, active)


def _swipes(raw: Mapping[str, Any], content: str, where: str) -> tuple[list[str], int]:
    """SillyTavern's alternatives of a reply: the texts and the index of the one shown."""
    swipes = raw.get("swipes")
    if not isinstance(swipes, list) or not all(isinstance(t, str) for t in swipes):
        raise _invalid(f"{where}: `swipes` must be a list of strings")
    if not swipes:
        return [content], 0
    chosen = raw.get("swipe_id", 0)
    if isinstance(chosen, bool) or not isinstance(chosen, int) or not 0 <= chosen < len(swipes):
        raise _invalid(f"{where}: `swipe_id` must index `swipes`")
    texts = [_content(t, f"{where}: `swipes`") for t in swipes]
    texts[chosen] = content  # `mes` is the text shown
    return texts, chosen


def _json(body: bytes, *, where: str = "the body") -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _invalid(f"{where} is not valid JSON") from None


def _invalid(reason: str) -> InvalidRequest:
    return InvalidRequest(f"invalid import: {reason}")


def _role(value: Any, where: str) -> MessageRole:
    if value not in ("user", "assistant"):
        raise _invalid(f"{where}.role must be 'user' or 'assistant'")
    return cast(MessageRole, value)


def _content(value: Any, where: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_IMPORTED_CONTENT:
        raise _invalid(f"{where} content must be a string of at most {MAX_IMPORTED_CONTENT}")
    return value


def _speaker_by_id(value: Any, role: MessageRole, speakers: Speakers, where: str) -> int | None:
    if role == "user":
        return None
    if speakers.character_id is not None:
        return speakers.character_id  # a one-to-one chat: every reply is its character's
    parsed = parse_id(value) if isinstance(value, str) else None
    if parsed is None or parsed not in speakers.members:
        raise _invalid(f"{where}.character_id must be a member of the group")
    return parsed


def _speaker_by_name(name: str, speakers: Speakers, where: str) -> int:
    if speakers.character_id is not None:
        return speakers.character_id
    wanted = name.strip().casefold()
    for character_id, member in speakers.members.items():
        if member.strip().casefold() == wanted:
            return character_id
    raise _invalid(f"{where}: {name!r} is not a member of the group")


def _timestamp(value: Any, where: str, *, default: datetime) -> datetime:
    parsed = _optional_timestamp(value, f"{where}.created_at")
    return default if parsed is None else parsed


def _optional_timestamp(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None:
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    raise _invalid(f"{where} must be an ISO 8601 timestamp")


def _send_date(value: Any, where: str, *, default: datetime) -> datetime:
    """SillyTavern writes several date styles; unknown ones fall back to ``default``."""
    if value is None:
        return default
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, tz=UTC)  # milliseconds since the epoch
        except (OverflowError, OSError, ValueError):
            raise _invalid(f"{where}: `send_date` is out of range") from None
    if not isinstance(value, str):
        raise _invalid(f"{where}: `send_date` must be a string or a number")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except ValueError:
        pass
    for pattern in _ST_DATE_FORMATS:
        try:
            return datetime.strptime(value, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    return default
