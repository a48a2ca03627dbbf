"""Errors raised by the storage layer.

Hierarchy::

    StorageError                  anything the database layer could not do
    ├── StorageUnavailable        pool timeout, cannot connect, statement timeout,
    │                             database locked: the app maps it to 503
    ├── UsernameTaken             users.create_user on an existing username
    ├── NotFound                  only where a function says it raises it
    └── ConstraintViolation       an integrity constraint rejected a write
                                  (e.g. a foreign key naming a missing row)

No SQLAlchemy or driver exception escapes ``Database.read``/``Database.write``:
they are translated into this hierarchy (the original is chained as ``__cause__``).
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every storage error."""


class StorageUnavailable(StorageError):
    """The database cannot serve the request right now (retry later)."""


class UsernameTaken(StorageError):
    """A user with that username already exists."""


class NotFound(StorageError):
    """The named row does not exist (only where a function documents it)."""


class ConstraintViolation(StorageError):
    """A write broke an integrity constraint (foreign key, unique, not null)."""
