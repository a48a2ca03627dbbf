"""Avatars: content-addressed PNG bytes, shared by every character that shows them.

A row exists only while a character references it. Both writers of a reference lock the
avatar row first (``hold``: insert, or lock the existing row) and whoever drops a reference
calls ``release`` in the same transaction, which locks the row and deletes it when nothing
references it any more. On PostgreSQL the row lock orders a concurrent set and release of the
same picture (the release then sees the new reference); SQLite runs one writer at a time.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Connection, delete, exists, select

from .inserts import insert_or_ignore
from .schema import avatars, characters
from .timestamps import utcnow

__all__ = ["get_avatar", "hold", "lock", "release", "sha256_of"]


def sha256_of(png: bytes) -> str:
    """The avatar's key: lowercase hex sha256 of its bytes."""
    return hashlib.sha256(png).hexdigest()


def hold(conn: Connection, png: bytes) -> str:
    """Store ``png`` unless already stored, lock its row for this transaction; its key."""
    sha = sha256_of(png)
    while True:
        inserted = insert_or_ignore(
            conn,
            avatars,
            {"sha256": sha, "png": png, "created_at": utcnow()},
            index_elements=["sha256"],
        )
        if inserted is not None:
            return sha
        locked = conn.execute(
            select(avatars.c.sha256).where(avatars.c.sha256 == sha).with_for_update()
        ).first()
        if locked is not None:
            return sha
        # deleted by a transaction that committed meanwhile: insert it again


def lock(conn: Connection, sha: str) -> bool:
    """Lock the avatar row ``sha`` for this transaction (before adding a reference to it);
    False if there is none."""
    return (
        conn.execute(
            select(avatars.c.sha256).where(avatars.c.sha256 == sha).with_for_update()
        ).first()
        is not None
    )


def release(conn: Connection, sha: str | None) -> None:
    """Delete the avatar ``sha`` if no character references it any more."""
    if sha is None:
        return
    locked = conn.execute(
        select(avatars.c.sha256).where(avatars.c.sha256 == sha).with_for_update()
    ).first()
    if locked is None:
        return
    referenced = conn.execute(
        select(exists().where(characters.c.avatar_sha256 == sha))
    ).scalar_one()
    if not referenced:
        conn.execute(delete(avatars).where(avatars.c.sha256 == sha))


def get_avatar(conn: Connection, sha: str) -> bytes | None:
    """The PNG bytes stored under ``sha``, or None."""
    row = conn.execute(select(avatars.c.png).where(avatars.c.sha256 == sha)).first()
    return None if row is None else bytes(row.png)
