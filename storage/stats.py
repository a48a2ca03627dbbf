"""Whole-database counts for the admin view."""

from __future__ import annotations

from sqlalchemy import Connection, Table, func, select

from .records import Counts
from .schema import characters, conversations, groups, jobs, memories, messages, users


def _count(conn: Connection, table: Table) -> int:
    return conn.execute(select(func.count()).select_from(table)).scalar_one()


def counts(conn: Connection) -> Counts:
    """Counts of users, characters, messages, groups, memories (and conversations, jobs)."""
    return Counts(
        users=_count(conn, users),
        characters=_count(conn, characters),
        messages=_count(conn, messages),
        groups=_count(conn, groups),
        memories=_count(conn, memories),
        extra={"conversations": _count(conn, conversations), "jobs": _count(conn, jobs)},
    )
