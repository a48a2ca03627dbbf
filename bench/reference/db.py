"""The reference server's storage: synchronous ``sqlite3`` calls, as the plan keeps them.

The plan (step 5, "注意事项 1") calls its synchronous database functions directly inside the
async routes. This module does the same with one ``sqlite3`` connection in WAL mode, used
only from the event loop thread.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench.reference.profile import profile_status

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY, username TEXT UNIQUE NOT NULL, password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (token TEXT PRIMARY KEY, user_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS characters (
    id TEXT PRIMARY KEY, user_id TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,
    profile TEXT NOT NULL, source_text TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, conversation TEXT NOT NULL,
    role TEXT NOT NULL, content TEXT NOT NULL, character_id TEXT, status TEXT NOT NULL,
    created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages (conversation, seq);
CREATE TABLE IF NOT EXISTS groups_ (
    id TEXT PRIMARY KEY, user_id TEXT NOT NULL, name TEXT NOT NULL, character_ids TEXT NOT NULL,
    strategy TEXT NOT NULL, max_speakers INTEGER NOT NULL, created_at TEXT NOT NULL);
"""


def now() -> str:
    """ISO 8601 UTC timestamp with a ``Z`` suffix."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_id() -> str:
    """An opaque id."""
    return uuid.uuid4().hex


@dataclass
class Database:
    """Synchronous sqlite3 access; every method runs on the event loop thread."""

    conn: sqlite3.Connection

    @classmethod
    def open(cls, path: str) -> Database:
        """Open (and create) the database file."""
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA synchronous=NORMAL")  # as FastNPC's storage/engine.py
        conn.executescript(SCHEMA)
        return cls(conn)

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    # ---- users and tokens
    def create_user(self, username: str, password_hash: str) -> dict[str, Any] | None:
        """Insert a user; ``None`` if the username is taken."""
        user = {
            "id": new_id(),
            "username": username,
            "is_admin": False,
            "disabled": False,
            "created_at": now(),
        }
        try:
            self.conn.execute(
                "INSERT INTO users (id, username, password_hash, created_at) VALUES (?, ?, ?, ?)",
                (user["id"], username, password_hash, user["created_at"]),
            )
        except sqlite3.IntegrityError:
            return None
        return user

    def user_credentials(self, username: str) -> tuple[dict[str, Any], str] | None:
        """The user and their password hash."""
        row = self.conn.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
        if row is None:
            return None
        return _user(row), str(row["password_hash"])

    def add_token(self, token: str, user_id: str) -> None:
        """Remember a session token."""
        self.conn.execute("INSERT INTO tokens (token, user_id) VALUES (?, ?)", (token, user_id))

    def user_for_token(self, token: str) -> dict[str, Any] | None:
        """The user a token belongs to."""
        row = self.conn.execute(
            "SELECT users.* FROM tokens JOIN users ON users.id = tokens.user_id"
            " WHERE tokens.token = ?",
            (token,),
        ).fetchone()
        return None if row is None else _user(row)

    # ---- characters
    def create_character(
        self, user_id: str, name: str, profile: dict[str, Any], source_text: str | None
    ) -> dict[str, Any]:
        """Insert a character and return it."""
        stamp = now()
        character = {
            "id": new_id(),
            "name": name,
            "status": profile_status(profile),
            "profile": profile,
            "created_at": stamp,
            "updated_at": stamp,
        }
        self.conn.execute(
            "INSERT INTO characters VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                character["id"],
                user_id,
                name,
                character["status"],
                json.dumps(profile),
                source_text,
                stamp,
                stamp,
            ),
        )
        return character

    def get_character(self, user_id: str, character_id: str) -> dict[str, Any] | None:
        """One of the user's characters."""
        row = self.conn.execute(
            "SELECT * FROM characters WHERE id = ? AND user_id = ?", (character_id, user_id)
        ).fetchone()
        if row is None:
            return None
        return {
            "id": row["id"],
            "name": row["name"],
            "status": row["status"],
            "profile": json.loads(row["profile"]),
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
        }

    # ---- messages
    def add_message(
        self,
        conversation: str,
        role: str,
        content: str,
        character_id: str | None,
        status: str = "complete",
    ) -> dict[str, Any]:
        """Append a message to a conversation and return it."""
        message = {
            "id": new_id(),
            "role": role,
            "content": content,
            "character_id": character_id,
            "status": status,
            "created_at": now(),
        }
        self.conn.execute(
            "INSERT INTO messages (id, conversation, role, content, character_id, status,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                message["id"],
                conversation,
                role,
                content,
                character_id,
                status,
                message["created_at"],
            ),
        )
        return message

    def recent_messages(self, conversation: str, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` messages, oldest first."""
        rows = self.conn.execute(
            "SELECT role, content, character_id FROM messages WHERE conversation = ?"
            " ORDER BY seq DESC LIMIT ?",
            (conversation, limit),
        ).fetchall()
        return [dict(row) for row in reversed(rows)]

    # ---- groups
    def create_group(
        self, user_id: str, name: str, character_ids: list[str], strategy: str, max_speakers: int
    ) -> dict[str, Any]:
        """Insert a group and return it."""
        group = {
            "id": new_id(),
            "name": name,
            "character_ids": character_ids,
            "strategy": strategy,
            "max_speakers": max_speakers,
            "created_at": now(),
        }
        self.conn.execute(
            "INSERT INTO groups_ VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                group["id"],
                user_id,
                name,
                json.dumps(character_ids),
                strategy,
                max_speakers,
                group["created_at"],
            ),
        )
        return group

    def get_group(self, user_id: str, group_id: str) -> dict[str, Any] | None:
        """One of the user's groups."""
        row = self.conn.execute(
            "SELECT * FROM groups_ WHERE id = ? AND user_id = ?", (group_id, user_id)
        ).fetchone()
        if row is None:
            return None
        return {
            "id": row["id"],
            "name": row["name"],
            "character_ids": json.loads(row["character_ids"]),
            "strategy": row["strategy"],
            "max_speakers": row["max_speakers"],
            "created_at": row["created_at"],
        }


def _user(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "username": row["username"],
        "is_admin": False,
        "disabled": False,
        "created_at": row["created_at"],
    }
