"""The caller's persona: who the characters are talking to."""

from __future__ import annotations

from quart import Blueprint
from quart.typing import ResponseReturnValue
from quart_schema import document_response, validate_request

from app.openapi import errors
from app.routes.common import authenticated, current_user, services
from app.schemas import PersonaIn, PersonaOut
from app.views import persona_view

bp = Blueprint("persona", __name__, url_prefix="/api/me")


@bp.get("/persona")
@authenticated
@document_response(PersonaOut)
async def get_persona() -> ResponseReturnValue:
    """The caller's persona (`name` null and `description` empty until set)."""
    return persona_view(await services().personas.get(current_user().id))


@bp.put("/persona")
@authenticated
@validate_request(PersonaIn)
@document_response(PersonaOut)
@errors(400, 413)
async def put_persona(data: PersonaIn) -> ResponseReturnValue:
    """Set `name` (≤ 64 chars, null clears) and/or `description` (≤ 2,000); a field left out
    keeps its value."""
    fields = data.model_dump(include=data.model_fields_set)
    if fields.get("description", "") is None:
        fields["description"] = ""
    persona = await services().personas.update(current_user().id, fields)
    return persona_view(persona)
