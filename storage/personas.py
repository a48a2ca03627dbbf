"""Personas: who each user is in role-play (one row per user, absent until first set)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from .direct import Direct
from .inserts import insert_or_ignore
from .records import Persona
from .schema import personas, users
from .timestamps import utcnow
from .unchanged import UNCHANGED

__all__ = ["UNCHANGED", "get_persona", "set_persona", "username_and_persona"]


_PERSONA = select(personas).where(personas.c.user_id == bindparam("user_id"))


def get_persona(conn: Connection, user_id: int) -> Persona:
    """The user's persona (empty if never set)."""
    row = conn.execute(_PERSONA, {"user_id": user_id}).first()
    if row is None:
        return Persona()
    return Persona(name=row.name, description=row.description)


# read by every prompt: on the driver's cursor, see ``storage.direct``
_USERNAME_AND_PERSONA = Direct(
    select(users.c.username, personas.c.name, personas.c.description)
    .select_from(users.outerjoin(personas, personas.c.user_id == users.c.id))
    .where(users.c.id == bindparam("user_id"))
)


def username_and_persona(conn: Connection, user_id: int) -> tuple[str, Persona]:
    """The user's username and persona (empty if never set) in one read; an empty username
    and persona when there is no such user."""
    found = _USERNAME_AND_PERSONA.rows(conn, {"user_id": user_id})
    if not found:
        return "", Persona()
    username, name, description = found[0]
    return username, Persona() if description is None else Persona(name, description)


def set_persona(
    conn: Connection,
    user_id: int,
    *,
    name: str | None = UNCHANGED,
    description: str = UNCHANGED,
) -> Persona:
    """Set the given fields (a field left ``UNCHANGED`` keeps its value); the persona."""
    insert_or_ignore(
        conn,
        personas,
        {"user_id": user_id, "name": None, "description": "", "updated_at": utcnow()},
        index_elements=["user_id"],
    )
    values: dict[str, Any] = {"updated_at": utcnow()}
    if name is not UNCHANGED:
        values["name"] = name
    if description is not UNCHANGED:
        values["description"] = description
    row = conn.execute(
        update(personas)
        .where(personas.c.user_id == user_id)
        .values(**values)
        .returning(personas.c.name, personas.c.description)
    ).one()
    return Persona(name=row.name, description=row.description)
