"""The chat's hot statements run on the driver's cursor, compiled once per dialect.

A chat reply runs 20 statements in its two transactions. Through SQLAlchemy Core's execution
(execution context, parameter processing, result object) a cached statement costs ~55-65 µs of
CPU on the bench machine; the same SQL on the DB-API cursor ~8 µs (measured, SQLite). The
statements here are still written with SQLAlchemy Core and compiled by it (``Direct`` keeps the
SQL string, the order of its parameters and its types' processors per dialect); only their
execution skips the layer, doing what it would have done with the values:

* parameters go through their types' bind processors (e.g. ``UtcDateTime`` to ISO text on
  SQLite, JSON); values fixed in the statement (``kind == "direct"``, ``LIMIT 1``) are
  processed once;
* result columns go through their types' result processors (``UtcDateTime`` back to an aware
  UTC datetime, SQLite's integers to ``bool``, JSON text to objects), chosen from the
  driver's description the first time the statement runs, as SQLAlchemy does;
* ``mappings`` keys rows by the names SQLAlchemy's own rows would have
  (``rows.message_of`` and the like build records from either).

psycopg gets the SQL with positional ``%s`` placeholders and a list (cheaper for it than
named ones and a dict); each pooled connection keeps one cursor (in its ``info``, which the
pool clears when it reconnects). A statement may also be given as a function of the dialect's
name (dialect-specific constructs such as ``ON CONFLICT``).

What is refused when the statement is built (not when it runs): expanding ``IN`` and other
parameters rendered at execution time, and INSERT/UPDATE columns whose value SQLAlchemy would
compute at execution (a Python-side ``default``): every value must be bound explicitly.

Driver errors are raised as SQLAlchemy's (``DBAPIError.instance``), a lost connection is
invalidated, so ``storage.errors.translated_errors`` maps them exactly as for any statement.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import BindParameter, ClauseElement, Column, Connection, bindparam
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any]
Statement = ClauseElement | Callable[[str], ClauseElement]  # or built per dialect name

_REQUIRED = object()
_CURSOR = "storage.direct.cursor"  # key in the pooled connection's ``info``


class _Compiled:
    """One statement compiled for one dialect, with its parameter and result plans."""

    __slots__ = ("sql", "binds", "names", "types", "returns_rows", "results")

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError("parameters rendered at execution time (expanding IN)")
        if compiled.insert_prefetch or compiled.update_prefetch:
            raise ValueError("a column default computed at execution: bind every value")
        if compiled.escaped_bind_names or compiled.implicit_returning:
            raise ValueError("escaped parameter names or implicit RETURNING")
        by_name = {name: bind for bind, name in compiled.bind_names.items()}
        if compiled.positional:  # qmark (SQLite)
            self.sql, order = compiled.string, list(compiled.positiontup or ())
        elif dialect.paramstyle == "pyformat":  # psycopg: the same SQL with positional %s
            self.sql, order = _positional(compiled.string)
        else:
            raise ValueError(f"unsupported paramstyle {dialect.paramstyle!r}")
        # (name, the value fixed in the statement, processed, or _REQUIRED; bind processor)
        binds: list[tuple[str, Any, Processor | None]] = []
        for name in order:
            bind = by_name[name]
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if bind.callable is not None:
                raise ValueError(f"parameter {name!r} has a callable value")
            fixed: Any = _REQUIRED
            if not bind.required:
                fixed = bind.value if processor is None else processor(bind.value)
            binds.append((name, fixed, processor))
        self.binds = binds
        columns = compiled._result_columns  # what SQLAlchemy's cursor result reads too
        self.names = tuple(column.keyname for column in columns)
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"result columns with the same name: {self.names}")
        self.types = [column.type for column in columns]
        self.returns_rows = bool(columns)
        # (index, processor) of the columns that have one; None until the first execution
        self.results: list[tuple[int, Processor]] | None = None

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        """The driver's parameters, in the order of the placeholders."""
        return [_value(params, *bind) for bind in self.binds]

    def processed(
        self, found: list[tuple[Any, ...]], cursor: Any, dialect: Dialect
    ) -> list[tuple[Any, ...]]:
        """``found`` rows with their result processors applied (chosen from the cursor's
        description on the first call: psycopg builds it anew on every access)."""
        results = self.results
        if results is None:
            results = []
            description = cursor.description
            for index, (type_, column) in enumerate(zip(self.types, description, strict=True)):
                found_processor = type_.dialect_impl(dialect).result_processor(dialect, column[1])
                if found_processor is not None:
                    results.append((index, found_processor))
            self.results = results
        if not results:
            return found
        out = []
        for row in found:
            values = list(row)
            for index, processor in results:
                values[index] = processor(values[index])
            out.append(tuple(values))
        return out


_PYFORMAT = re.compile(r"%%|%\((\w+)\)s")


def _positional(sql: str) -> tuple[str, list[str]]:
    """``%(name)s`` placeholders as ``%s`` (psycopg takes a sequence ~6 µs faster than a
    mapping, measured), and the names in their order (a name used twice comes twice)."""
    names: list[str] = []

    def placeholder(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return "%%"  # an escaped percent sign stays one
        names.append(match.group(1))
        return "%s"

    return _PYFORMAT.sub(placeholder, sql), names


def _value(params: Mapping[str, Any], name: str, fixed: Any, processor: Processor | None) -> Any:
    if name in params:
        value = params[name]
        return value if processor is None else processor(value)
    if fixed is _REQUIRED:
        raise sa_exc.ArgumentError(f"a value is required for parameter {name!r}")
    return fixed


def bound(columns: Iterable[Column[Any]]) -> dict[str, BindParameter[Any]]:
    """INSERT values: each column bound to a parameter of its name and type."""
    return {column.key: bindparam(column.key, type_=column.type) for column in columns}


class Direct:
    """One statement for the driver's cursor (built once, compiled once per dialect)."""

    __slots__ = ("_statement", "_compiled")

    def __init__(self, statement: Statement) -> None:
        self._statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def compiled(self, dialect: Dialect) -> _Compiled:
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            statement = self._statement
            if not isinstance(statement, ClauseElement):
                statement = statement(dialect.name)
            compiled = self._compiled[dialect.name] = _Compiled(statement, dialect)
        return compiled

    def names(self, conn: Connection) -> tuple[str, ...]:
        """The names of the result columns (as in SQLAlchemy's rows)."""
        return self.compiled(conn.dialect).names

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run it inside ``conn``'s transaction; its rows as processed tuples (none for DML
        without RETURNING)."""
        dialect = conn.dialect
        compiled = self._compiled.get(dialect.name) or self.compiled(dialect)
        arguments = compiled.arguments(params)
        if not conn.in_transaction():
            conn.begin()  # what SQLAlchemy's autobegin would do on its first statement
        pooled = conn.connection
        driver_connection = pooled.driver_connection
        # one cursor per driver connection, kept with it (psycopg's cost ~10 µs to make)
        kept = pooled.info.get(_CURSOR)
        if kept is not None and kept[0] is driver_connection:
            cursor = kept[1]
        else:
            assert driver_connection is not None
            cursor = driver_connection.cursor()
            pooled.info[_CURSOR] = (driver_connection, cursor)
        try:
            cursor.execute(compiled.sql, arguments)
            if not compiled.returns_rows:
                return []
            found = cursor.fetchall()
            return compiled.processed(found, cursor, dialect)
        except dialect.loaded_dbapi.Error as exc:
            pooled.info.pop(_CURSOR, None)
            invalidated = dialect.is_disconnect(exc, driver_connection, cursor)
            if invalidated:
                conn.invalidate(exc)
            else:
                cursor.close()
            raise sa_exc.DBAPIError.instance(
                compiled.sql,
                arguments,
                exc,
                dialect.loaded_dbapi.Error,
                connection_invalidated=invalidated,
                dialect=dialect,
            ) from exc

    def mappings(self, conn: Connection, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """`rows` keyed by column name (as ``Row._mapping``)."""
        found = self.rows(conn, params)
        names = self._compiled[conn.dialect.name].names
        return [dict(zip(names, row, strict=True)) for row in found]

    def first(self, conn: Connection, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """The first row of `mappings`, or None."""
        found = self.mappings(conn, params)
        return found[0] if found else None

    def scalar(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """The first column of the first row, or None."""
        found = self.rows(conn, params)
        return found[0][0] if found else None
