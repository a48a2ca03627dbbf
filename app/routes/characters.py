"""Characters: CRUD, generation of all eight categories, regeneration of one."""

from __future__ import annotations

from quart import Blueprint
from quart.typing import ResponseReturnValue
from quart_schema import document_response, validate_request

from app.routes.common import (
    authenticated,
    current_user,
    no_content,
    rate_limited,
    run_response,
    services,
)
from app.schemas import CharacterIn, CharacterList, CharacterOut, CharacterPatch, GenerateIn
from app.views import character_view, parse_id

bp = Blueprint("characters", __name__, url_prefix="/api/characters")


@bp.post("")
@authenticated
@validate_request(CharacterIn)
@document_response(CharacterOut, 201)
async def create(data: CharacterIn) -> ResponseReturnValue:
    """Create a character from a name and an optional partial profile."""
    character = await services().characters.create(current_user().id, data.name, data.profile)
    return character_view(character), 201


@bp.get("")
@authenticated
@document_response(CharacterList)
async def list_characters() -> ResponseReturnValue:
    """The caller's own characters."""
    items = await services().characters.list(current_user().id)
    return {"items": [character_view(c) for c in items]}


@bp.get("/<character_id>")
@authenticated
@document_response(CharacterOut)
async def get(character_id: str) -> ResponseReturnValue:
    character = await services().characters.get(current_user().id, parse_id(character_id))
    return character_view(character)


@bp.patch("/<character_id>")
@authenticated
@validate_request(CharacterPatch)
@document_response(CharacterOut)
async def patch(character_id: str, data: CharacterPatch) -> ResponseReturnValue:
    """Rename and/or replace the given profile categories."""
    character = await services().characters.update(
        current_user().id, parse_id(character_id), name=data.name, profile=data.profile
    )
    return character_view(character)


@bp.delete("/<character_id>")
@authenticated
async def delete(character_id: str) -> ResponseReturnValue:
    """Delete a character with its chat, memories and group memberships."""
    await services().characters.delete(current_user().id, parse_id(character_id))
    return no_content()


@bp.post("/generate")
@authenticated
@rate_limited
@validate_request(GenerateIn)
@document_response(CharacterOut, 201)
async def generate(data: GenerateIn) -> ResponseReturnValue:
    """[stream] Generate all eight categories concurrently (`category`, `character`, `done`)."""
    run = services().characters.start_generation(
        current_user().id, data.name, source_text=data.source_text, model=data.model
    )
    return await run_response(run, character_view, status=201)


@bp.post("/<character_id>/generate/<category>")
@authenticated
@rate_limited
@document_response(CharacterOut)
async def regenerate_category(character_id: str, category: str) -> ResponseReturnValue:
    """[stream] Regenerate one category (`category`, `character`, `done`)."""
    run = await services().characters.start_regeneration(
        current_user().id, parse_id(character_id), category, model=None
    )
    return await run_response(run, character_view)
