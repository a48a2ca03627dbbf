"""Personas: who each user is in role-play (one row per user, absent until first set)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from .inserts import insert_or_ignore
from .records import Persona
from .schema import personas
from .timestamps import utcnow
from .unchanged import UNCHANGED

__all__ = ["UNCHANGED", "get_persona", "set_persona"]


_PERSONA = select(personas).where(personas.c.user_id == bindparam("user_id"))


def get_persona(conn: Connection, user_id: int) -> Persona:
    """The user's persona (empty if never set)."""
    row = conn.execute(_PERSONA, {"user_id": user_id}).first()
    if row is None:
        return Persona()
    return Persona(name=row.name, description=row.description)


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
