"""Errors raised by the storage layer.

Hierarchy::

    StorageError                  anything the database layer could not do
    ├── StorageUnavailable        pool timeout, cannot connect, statement timeout,
    │                             database locked: the app maps it to 503
    ├── UsernameTaken             users.create_user on an existing username
    │                             (compared case-insensitively)
    ├── LastAdmin                 users.update_user would leave no enabled admin
    ├── NotFound                  only where a function says it raises it
    ├── InvalidReference          an argument names a row that is not there (e.g. the
    │                             ``before`` of a page): the caller's input, 400
    └── ConstraintViolation       an integrity constraint rejected a write
                                  (e.g. a foreign key naming a missing row)

No SQLAlchemy or driver exception escapes ``Database.read``/``Database.write``:
they are translated into this hierarchy (the original is chained as ``__cause__``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc


class StorageError(Exception):
    """Base class of every storage error."""


class StorageUnavailable(StorageError):
    """The database cannot serve the request right now (retry later)."""


class UsernameTaken(StorageError):
    """A user with that username already exists."""


class LastAdmin(StorageError):
    """The change would disable or demote the last enabled administrator."""


class NotFound(StorageError):
    """The named row does not exist (only where a function documents it)."""


class InvalidReference(StorageError):
    """An argument names no row where it must (only where a function documents it)."""


class ConstraintViolation(StorageError):
    """A write broke an integrity constraint (foreign key, unique, not null)."""


@contextmanager
def translated_errors() -> Iterator[None]:
    """Turn SQLAlchemy/driver exceptions into the ``storage.errors`` hierarchy."""
    try:
        yield
    except StorageError:
        raise
    except sa_exc.TimeoutError as exc:
        raise StorageUnavailable("timed out waiting for a database connection") from exc
    except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
        raise StorageUnavailable(f"database unavailable: {exc.orig}") from exc
    except sa_exc.IntegrityError as exc:
        raise ConstraintViolation(str(exc.orig)) from exc
    except sa_exc.DBAPIError as exc:
        if exc.connection_invalidated:
            raise StorageUnavailable(f"database connection lost: {exc.orig}") from exc
        raise StorageError(str(exc.orig)) from exc
    except sa_exc.StatementError as exc:
        # A bad argument caught while binding (e.g. a naive datetime): the caller's bug.
        if isinstance(exc.orig, TypeError | ValueError):
            raise exc.orig from exc
        raise StorageError(str(exc)) from exc
    except sa_exc.SQLAlchemyError as exc:
        raise StorageError(str(exc)) from exc
