"""Personas: who a user is in role-play (`GET/PUT /api/me/persona`).

`PersonaService.get` is what prompt building reads (the persona is part of every prompt of
that user) and `display_name` what fills `{{user}}`.
"""

from __future__ import annotations

from typing import Any

from storage import Database, personas
from storage.records import Persona


class PersonaService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, user_id: int) -> Persona:
        """The user's persona (name None and empty description until set)."""
        return await self._db.read(personas.get_persona, user_id)

    async def update(self, user_id: int, fields: dict[str, Any]) -> Persona:
        """Set the given fields (``name``, ``description``); others keep their value."""
        return await self._db.write(personas.set_persona, user_id, **fields)


def display_name(persona: Persona, username: str) -> str:
    """The name ``{{user}}`` stands for: the persona's name, else the username."""
    return persona.name or username
