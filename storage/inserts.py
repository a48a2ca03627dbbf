"""``INSERT … ON CONFLICT DO NOTHING RETURNING *`` on both backends.

A conditional insert never raises an integrity error, so it does not poison a
PostgreSQL transaction, and it is race-free: a concurrent insert of the same
key waits for the other transaction and then does nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, Table, TextClause
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert


def insert_or_ignore(
    conn: Connection,
    table: Table,
    values: Mapping[str, Any],
    *,
    index_elements: Sequence[str] | None,
    index_where: ColumnElement[bool] | TextClause | None = None,
) -> Row[Any] | None:
    """Insert ``values`` unless it conflicts on ``index_elements`` (None: on any unique key);
    the new row or None."""
    elements = None if index_elements is None else list(index_elements)
    if conn.dialect.name == "sqlite":
        sqlite_stmt = (
            sqlite_insert(table)
            .values(dict(values))
            .on_conflict_do_nothing(index_elements=elements, index_where=index_where)
        )
        return conn.execute(sqlite_stmt.returning(*table.c)).first()
    pg_stmt = (
        postgresql_insert(table)
        .values(dict(values))
        .on_conflict_do_nothing(index_elements=elements, index_where=index_where)
    )
    return conn.execute(pg_stmt.returning(*table.c)).first()
