"""Characters: CRUD, generation of all eight categories, regeneration of one, avatars, cards."""

from __future__ import annotations

from typing import Any

import orjson
from quart import Blueprint, Response, request
from quart.typing import ResponseReturnValue
from quart_schema import document_response, validate_querystring, validate_request

from app.body_limits import accepts_upload
from app.openapi import (
    LLM_ERRORS,
    errors,
    no_content_response,
    raw_body,
    streams,
    text_response,
)
from app.routes.common import (
    authenticated,
    current_user,
    no_content,
    quota_checked,
    rate_limited,
    run_response,
    services,
)
from app.schemas import (
    CardQuery,
    CharacterIn,
    CharacterList,
    CharacterOut,
    CharacterPatch,
    CharacterSettingsIn,
    GenerateIn,
    ImportQuery,
)
from app.services.models import check_settings_models, chosen_model
from app.views import character_view, parse_id
from storage.characters import CharacterExtras
from storage.records import CharacterSettings

bp = Blueprint("characters", __name__, url_prefix="/api/characters")


@bp.post("")
@authenticated
@validate_request(CharacterIn)
@document_response(CharacterOut, 201)
@errors(400, 413)
async def create(data: CharacterIn) -> ResponseReturnValue:
    """Create a character from a name, an optional partial profile and its card fields."""
    _check_models(data.settings)
    extras = CharacterExtras(
        greeting=data.greeting,
        alternate_greetings=data.alternate_greetings or [],
        tags=data.tags or [],
        sources=[s.record() for s in data.sources or []],
        settings=data.settings.record() if data.settings else CharacterSettings(),
    )
    character = await services().characters.create(
        current_user().id, data.name, data.profile, extras
    )
    return character_view(character), 201


def _check_models(settings: CharacterSettingsIn | None) -> None:
    """400 when the settings name a model FASTNPC_MODELS does not allow."""
    if settings is not None:
        check_settings_models(
            settings.model, settings.fallback_models, services().settings.llm.models
        )


def _changes(data: CharacterPatch) -> dict[str, Any]:
    """The card fields a PATCH gives, as ``update_character`` keywords (null clears)."""
    given = data.model_fields_set
    changes: dict[str, Any] = {}
    if "greeting" in given:
        changes["greeting"] = data.greeting
    for key in ("alternate_greetings", "tags"):
        if key in given:
            changes[key] = getattr(data, key) or []
    if "sources" in given:
        changes["sources"] = [s.record() for s in data.sources or []]
    if "settings" in given:
        settings = data.settings
        changes["settings"] = (
            {} if settings is None else settings.model_dump(include=settings.model_fields_set)
        )
    return changes


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
@errors(404)
async def get(character_id: str) -> ResponseReturnValue:
    character = await services().characters.get(current_user().id, parse_id(character_id))
    return character_view(character)


@bp.patch("/<character_id>")
@authenticated
@validate_request(CharacterPatch)
@document_response(CharacterOut)
@errors(400, 404, 413)
async def patch(character_id: str, data: CharacterPatch) -> ResponseReturnValue:
    """Rename, replace the given profile categories and card fields (settings keys merge)."""
    _check_models(data.settings)
    character = await services().characters.update(
        current_user().id,
        parse_id(character_id),
        name=data.name,
        profile=data.profile,
        changes=_changes(data),
    )
    return character_view(character)


@bp.put("/<character_id>/avatar")
@accepts_upload
@authenticated
@document_response(CharacterOut)
@errors(400, 404, 413)
@raw_body("The image: PNG, JPEG or WebP.", "image/png", "image/jpeg", "image/webp")
async def put_avatar(character_id: str) -> ResponseReturnValue:
    """Upload an avatar (PNG, JPEG or WebP body ≤ FASTNPC_MAX_UPLOAD_BYTES); stored as a
    256×256 PNG centre crop. Not such an image, or over 40 megapixels: 400 `invalid_image`."""
    upload = await request.get_data(cache=False, as_text=False, parse_form_data=False)
    character = await services().characters.set_avatar(
        current_user().id, parse_id(character_id), upload
    )
    return character_view(character)


@bp.delete("/<character_id>/avatar")
@authenticated
@document_response(CharacterOut)
@errors(404)
async def delete_avatar(character_id: str) -> ResponseReturnValue:
    """Remove the character's avatar."""
    character = await services().characters.delete_avatar(current_user().id, parse_id(character_id))
    return character_view(character)


@bp.post("/<character_id>/copy")
@authenticated
@document_response(CharacterOut, 201)
@errors(404)
async def copy(character_id: str) -> ResponseReturnValue:
    """A new character with this one's profile, settings, greetings, tags and avatar (201);
    not its conversations or memories."""
    character = await services().characters.copy(current_user().id, parse_id(character_id))
    return character_view(character), 201


@bp.delete("/<character_id>")
@authenticated
@no_content_response
@errors(404)
async def delete(character_id: str) -> ResponseReturnValue:
    """Delete a character with its chat, memories and group memberships."""
    await services().characters.delete(current_user().id, parse_id(character_id))
    return no_content()


@bp.post("/import")
@accepts_upload
@authenticated
@validate_querystring(ImportQuery)
@document_response(CharacterOut, 201)
@errors(400, 413, *LLM_ERRORS)
@streams
@raw_body("A Character Card V2/V3: JSON, or a PNG carrying it.", "application/json", "image/png")
@quota_checked
async def import_card(query_args: ImportQuery) -> ResponseReturnValue:
    """[stream] Import a Character Card V2/V3 (`application/json`, or `image/png` with a `ccv3`
    or `chara` text chunk; ≤ FASTNPC_MAX_UPLOAD_BYTES). `?complete=true` generates the
    categories the card leaves empty (`category` events), then `character`, `done`.
    Not a card: 400 `invalid_card`, nothing stored."""
    upload = await request.get_data(cache=False, as_text=False, parse_form_data=False)
    run = await services().cards.start_import(
        current_user().id, upload, complete=query_args.complete
    )
    return await run_response(run, character_view, status=201)


@bp.get("/<character_id>/card")
@authenticated
@validate_querystring(CardQuery)
@text_response("application/json", "A Character Card V2 or V3, as JSON or PNG.", "image/png")
@errors(400, 404)
async def export_card(character_id: str, query_args: CardQuery) -> ResponseReturnValue:
    """The character as a Character Card (`spec=v2|v3`, `format=json|png`); a PNG carries
    `chara` (V2, base64 JSON) and for V3 also `ccv3`. `data.extensions.fastnpc` holds the
    full profile and settings."""
    card = await services().cards.export(
        current_user().id, parse_id(character_id), query_args.spec, query_args.format
    )
    if isinstance(card, bytes):
        return Response(card, status=200, content_type="image/png")
    # orjson keeps the card's field order and writes UTF-8 (Quart's JSON sorts and escapes)
    return Response(orjson.dumps(card), status=200, content_type="application/json")


@bp.post("/generate")
@authenticated
@rate_limited
@validate_request(GenerateIn)
@document_response(CharacterOut, 201)
@errors(400, 404, 413, *LLM_ERRORS)
@streams
@quota_checked
async def generate(data: GenerateIn) -> ResponseReturnValue:
    """[stream] Generate all eight categories concurrently (`category`, `character`, `done`).

    With `source` (`{"provider": "wikipedia"|"baike", "title"|"url", "lang"?}`) instead of
    `source_text`, the page is fetched first and its main text (≤ 20,000 characters) is the
    source text, recorded in the character's `sources`; the stream starts with `source`
    `{"provider", "title", "url", "chars"}`. No such page (or a disambiguation page): 404
    `source_not_found`; the source failing, timing out, answering too much or redirecting to
    another origin: 502 `source_unavailable`; nothing is created in either case."""
    model = chosen_model(data.model, services().settings.llm.models)
    run = await services().characters.start_generation(
        current_user().id,
        data.name,
        source_text=data.source_text,
        model=model,
        source=None if data.source is None else data.source.query(),
    )
    return await run_response(run, character_view, status=201)


@bp.post("/<character_id>/generate/<category>")
@authenticated
@rate_limited
@document_response(CharacterOut)
@errors(404, *LLM_ERRORS)
@streams
@quota_checked
async def regenerate_category(character_id: str, category: str) -> ResponseReturnValue:
    """[stream] Regenerate one category (`category`, `character`, `done`)."""
    run = await services().characters.start_regeneration(
        current_user().id, parse_id(character_id), category, model=None
    )
    return await run_response(run, character_view)
