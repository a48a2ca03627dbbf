"""``INSERT … ON CONFLICT DO NOTHING RETURNING *`` on both backends.

A conditional insert never raises an integrity error, so it does not poison a
PostgreSQL transaction, and it is race-free: a concurrent insert of the same
key waits for the other transaction and then does nothing.

The statement is built once per (dialect, table, conflict target, column set) and executed
with the values as parameters, so SQLAlchemy's compiled cache is hit without building and
keying a new statement on every call (chat replies insert on their hot path).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, Connection, Executable, Insert, Row, Table, TextClause
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .direct import Direct, bound


def insert_or_ignore(
    conn: Connection,
    table: Table,
    values: Mapping[str, Any],
    *,
    index_elements: Sequence[str] | None,
    index_where: ColumnElement[bool] | TextClause | None = None,
) -> Row[Any] | None:
    """Insert ``values`` unless it conflicts on ``index_elements`` (None: on any unique key);
    the new row or None. ``index_where`` must be a module-level constant (it keys a cache)."""
    elements = None if index_elements is None else tuple(index_elements)
    statement = _statement(conn.dialect.name, table, elements, index_where)
    return conn.execute(statement, dict(values)).first()


@lru_cache(maxsize=64)
def _statement(
    dialect: str,
    table: Table,
    elements: tuple[str, ...] | None,
    index_where: ColumnElement[bool] | TextClause | None,
) -> Executable:
    insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
    target = None if elements is None else list(elements)
    return (
        insert(table)
        .on_conflict_do_nothing(index_elements=target, index_where=index_where)
        .returning(*table.c)
    )


def direct_insert_or_ignore(
    table: Table,
    columns: Sequence[str],
    *,
    index_elements: Sequence[str],
    returning: Sequence[str] = (),
) -> Direct:
    """`insert_or_ignore` on the driver's cursor (``storage.direct``): parameters named as
    ``columns`` (every one bound: no column default is applied), ``returning`` those columns
    of the new row (no row when it conflicts). Build it once, at import."""

    def build(dialect: str) -> Insert:
        insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
        statement = (
            insert(table)
            .values(bound(table.c[name] for name in columns))
            .on_conflict_do_nothing(index_elements=list(index_elements))
        )
        if returning:
            return statement.returning(*(table.c[name] for name in returning))
        return statement

    return Direct(build)
