"""A few hot-path statements run on the driver's cursor, compiled once per dialect.

A chat reply runs ~26 statements in its two transactions. Through SQLAlchemy Core's execution
(execution context, parameter processing, result object) a cached statement costs ~55-65 µs of
CPU on the bench machine; the same SQL on the DB-API cursor ~8 µs (measured, SQLite). The
statements here are still written with SQLAlchemy Core and compiled by it (``Direct`` keeps
the SQL string and the order of its parameters per dialect); only their execution skips the
layer. That is safe only for statements whose results are plain values (integers): no result
processing happens. Parameters go through their types' bind processors (e.g. ``UtcDateTime``).

Driver errors are raised as SQLAlchemy's (``DBAPIError.instance``), a lost connection is
invalidated, so ``storage.errors.translated_errors`` maps them exactly as for any statement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import ClauseElement, Connection
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any]


class _Compiled:
    __slots__ = ("sql", "compiled", "positions", "processors")

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        self.sql = compiled.string
        self.compiled = compiled
        # qmark/numeric paramstyles (SQLite) take a sequence in this order; named ones a dict
        self.positions = list(compiled.positiontup or ()) if compiled.positional else None
        processors: dict[str, Processor] = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.bind_processor(dialect)
            if processor is not None:
                processors[name] = processor
        self.processors = processors

    def arguments(self, params: Mapping[str, Any]) -> Any:
        values = self.compiled.construct_params(dict(params))
        for name, processor in self.processors.items():
            if name in values:
                values[name] = processor(values[name])
        if self.positions is None:
            return values
        return tuple(values[name] for name in self.positions)


class Direct:
    """One statement (no expanding ``IN``, integer or text results) for the driver's cursor."""

    __slots__ = ("_statement", "_compiled")

    def __init__(self, statement: ClauseElement) -> None:
        self._statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run it inside ``conn``'s transaction; its rows as tuples (none for DML)."""
        dialect = conn.dialect
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self._compiled[dialect.name] = _Compiled(self._statement, dialect)
        arguments = compiled.arguments(params)
        if not conn.in_transaction():
            conn.begin()  # what SQLAlchemy's autobegin would do on its first statement
        driver_connection = conn.connection.driver_connection
        assert driver_connection is not None
        cursor = driver_connection.cursor()
        try:
            cursor.execute(compiled.sql, arguments)
            return list(cursor.fetchall()) if cursor.description else []
        except dialect.loaded_dbapi.Error as exc:
            invalidated = dialect.is_disconnect(exc, driver_connection, cursor)
            if invalidated:
                conn.invalidate(exc)
            raise sa_exc.DBAPIError.instance(
                compiled.sql,
                arguments,
                exc,
                dialect.loaded_dbapi.Error,
                connection_invalidated=invalidated,
                dialect=dialect,
            ) from exc
        finally:
            cursor.close()

    def scalar(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """The first column of the first row, or None."""
        found = self.rows(conn, params)
        return found[0][0] if found else None
