"""Prompt snapshots: the exact prompt sent for an assistant message, kept a few days.

The prompt is stored as zlib-compressed JSON (role-play prompts repeat the character's profile
and compress several times over); a snapshot goes with its message (foreign key cascade).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, delete, select

from .inserts import direct_insert_or_ignore
from .schema import prompt_snapshots
from .timestamps import utcnow

__all__ = ["PromptSnapshot", "delete_older_than", "get_prompt", "record_prompt"]


@dataclass(frozen=True, slots=True)
class PromptSnapshot:
    message_id: int
    messages: list[dict[str, Any]]
    model: str
    created_at: datetime


_RECORD = direct_insert_or_ignore(
    prompt_snapshots, ["message_id", "model", "data", "created_at"], index_elements=["message_id"]
)


def record_prompt(
    conn: Connection, message_id: int, messages: Sequence[Mapping[str, Any]], model: str
) -> None:
    """Keep the prompt ``messages`` sent to ``model`` for assistant message ``message_id``
    (a second snapshot of the same message is ignored)."""
    # orjson: this runs in every reply's save transaction (the stdlib encoder was a visible
    # share of it); the stored JSON reads back the same
    data = zlib.compress(orjson.dumps([dict(m) for m in messages]), level=6)
    _RECORD.rows(
        conn, {"message_id": message_id, "model": model, "data": data, "created_at": utcnow()}
    )


def get_prompt(conn: Connection, message_id: int, *, since: datetime) -> PromptSnapshot | None:
    """The snapshot of ``message_id`` if recorded at or after ``since``, else None."""
    row = conn.execute(
        select(prompt_snapshots).where(
            prompt_snapshots.c.message_id == message_id, prompt_snapshots.c.created_at >= since
        )
    ).first()
    if row is None:
        return None
    messages = json.loads(zlib.decompress(bytes(row.data)))
    return PromptSnapshot(row.message_id, messages, row.model, row.created_at)


def delete_older_than(conn: Connection, cutoff: datetime) -> int:
    """Delete the snapshots recorded before ``cutoff``; how many."""
    return conn.execute(
        delete(prompt_snapshots).where(prompt_snapshots.c.created_at < cutoff)
    ).rowcount
