"""Lorebooks (world info): CRUD, entries, import/export, matching, and attaching them to
characters and groups."""

from __future__ import annotations

import orjson
from quart import Blueprint, Response, request
from quart.typing import ResponseReturnValue
from quart_schema import document_response, validate_request

from app.body_limits import accepts_upload
from app.openapi import errors, no_content_response, raw_body, text_response
from app.routes.common import authenticated, current_user, no_content, services
from app.schemas import (
    LorebookIdsIn,
    LorebookIdsOut,
    LorebookIn,
    LorebookList,
    LorebookOut,
    LorebookPatch,
    LoreEntryIn,
    LoreEntryOut,
    LoreEntryPatch,
    LoreMatchIn,
    LoreMatchOut,
)
from app.views import lore_entry_view, lorebook_view, parse_id

bp = Blueprint("lorebooks", __name__)


@bp.post("/api/lorebooks")
@authenticated
@validate_request(LorebookIn)
@document_response(LorebookOut, 201)
@errors(400, 413)
async def create(data: LorebookIn) -> ResponseReturnValue:
    """Create a lorebook (optionally with entries)."""
    book = await services().lorebooks.create(current_user().id, data)
    return lorebook_view(book), 201


@bp.get("/api/lorebooks")
@authenticated
@document_response(LorebookList)
async def list_lorebooks() -> ResponseReturnValue:
    """The caller's lorebooks with their entries."""
    books = await services().lorebooks.list_lorebooks(current_user().id)
    return {"items": [lorebook_view(b) for b in books]}


@bp.post("/api/lorebooks/import")
@accepts_upload
@authenticated
@document_response(LorebookOut, 201)
@errors(400, 413)
@raw_body("A V3 lorebook, a V2 character_book or SillyTavern world info.", "application/json")
async def import_lorebook() -> ResponseReturnValue:
    """Import a Character Card V3 lorebook (with or without its `lorebook_v3` wrapper), a V2
    `character_book` or a SillyTavern world-info JSON (≤ FASTNPC_MAX_UPLOAD_BYTES)."""
    upload = await request.get_data(cache=False, as_text=False, parse_form_data=False)
    book = await services().lorebooks.import_lorebook(current_user().id, upload)
    return lorebook_view(book), 201


@bp.get("/api/lorebooks/<lorebook_id>")
@authenticated
@document_response(LorebookOut)
@errors(404)
async def get(lorebook_id: str) -> ResponseReturnValue:
    return lorebook_view(await services().lorebooks.get(current_user().id, parse_id(lorebook_id)))


@bp.patch("/api/lorebooks/<lorebook_id>")
@authenticated
@validate_request(LorebookPatch)
@document_response(LorebookOut)
@errors(400, 404, 413)
async def patch(lorebook_id: str, data: LorebookPatch) -> ResponseReturnValue:
    """Change the name, description, scan_depth, token_budget or recursive."""
    values = {k: v for k, v in data.model_dump(exclude_unset=True).items() if v is not None}
    book = await services().lorebooks.update(current_user().id, parse_id(lorebook_id), values)
    return lorebook_view(book)


@bp.delete("/api/lorebooks/<lorebook_id>")
@authenticated
@no_content_response
@errors(404)
async def delete(lorebook_id: str) -> ResponseReturnValue:
    """Delete the lorebook, its entries and its attachments."""
    await services().lorebooks.delete(current_user().id, parse_id(lorebook_id))
    return no_content()


@bp.get("/api/lorebooks/<lorebook_id>/export")
@authenticated
@text_response("application/json", "The lorebook as a Character Card V3 lorebook.")
@errors(404)
async def export(lorebook_id: str) -> ResponseReturnValue:
    """The lorebook as Character Card V3 lorebook JSON (`{"spec": "lorebook_v3", "data"}`)."""
    exported = await services().lorebooks.export(current_user().id, parse_id(lorebook_id))
    return Response(orjson.dumps(exported), status=200, content_type="application/json")


@bp.post("/api/lorebooks/<lorebook_id>/match")
@authenticated
@validate_request(LoreMatchIn)
@document_response(LoreMatchOut)
@errors(400, 404, 413)
async def match(lorebook_id: str, data: LoreMatchIn) -> ResponseReturnValue:
    """The entries `text` would activate, before any budget (for authors)."""
    ids = await services().lorebooks.match(current_user().id, parse_id(lorebook_id), data.text)
    return {"entry_ids": ids}


@bp.post("/api/lorebooks/<lorebook_id>/entries")
@authenticated
@validate_request(LoreEntryIn)
@document_response(LoreEntryOut, 201)
@errors(400, 404, 413)
async def add_entry(lorebook_id: str, data: LoreEntryIn) -> ResponseReturnValue:
    entry = await services().lorebooks.add_entry(current_user().id, parse_id(lorebook_id), data)
    return lore_entry_view(entry), 201


@bp.patch("/api/lorebooks/<lorebook_id>/entries/<entry_id>")
@authenticated
@validate_request(LoreEntryPatch)
@document_response(LoreEntryOut)
@errors(400, 404, 413)
async def patch_entry(lorebook_id: str, entry_id: str, data: LoreEntryPatch) -> ResponseReturnValue:
    """Change the given fields of an entry."""
    values = {k: v for k, v in data.model_dump(exclude_unset=True).items() if v is not None}
    entry = await services().lorebooks.update_entry(
        current_user().id, parse_id(lorebook_id), parse_id(entry_id), values
    )
    return lore_entry_view(entry)


@bp.delete("/api/lorebooks/<lorebook_id>/entries/<entry_id>")
@authenticated
@no_content_response
@errors(404)
async def delete_entry(lorebook_id: str, entry_id: str) -> ResponseReturnValue:
    await services().lorebooks.delete_entry(
        current_user().id, parse_id(lorebook_id), parse_id(entry_id)
    )
    return no_content()


@bp.put("/api/characters/<character_id>/lorebooks")
@authenticated
@validate_request(LorebookIdsIn)
@document_response(LorebookIdsOut)
@errors(400, 404, 413)
async def attach_to_character(character_id: str, data: LorebookIdsIn) -> ResponseReturnValue:
    """Attach exactly these lorebooks, in order, to the character."""
    ids = await services().lorebooks.attach_to_character(
        current_user().id, parse_id(character_id), data.lorebook_ids
    )
    return {"lorebook_ids": [str(i) for i in ids]}


@bp.get("/api/characters/<character_id>/lorebooks")
@authenticated
@document_response(LorebookIdsOut)
@errors(404)
async def character_lorebooks(character_id: str) -> ResponseReturnValue:
    """The lorebooks attached to the character, in order."""
    ids = await services().lorebooks.character_lorebooks(current_user().id, parse_id(character_id))
    return {"lorebook_ids": [str(i) for i in ids]}


@bp.put("/api/groups/<group_id>/lorebooks")
@authenticated
@validate_request(LorebookIdsIn)
@document_response(LorebookIdsOut)
@errors(400, 404, 413)
async def attach_to_group(group_id: str, data: LorebookIdsIn) -> ResponseReturnValue:
    """Attach exactly these lorebooks, in order, to the group (after each speaker's own)."""
    ids = await services().lorebooks.attach_to_group(
        current_user().id, parse_id(group_id), data.lorebook_ids
    )
    return {"lorebook_ids": [str(i) for i in ids]}


@bp.get("/api/groups/<group_id>/lorebooks")
@authenticated
@document_response(LorebookIdsOut)
@errors(404)
async def group_lorebooks(group_id: str) -> ResponseReturnValue:
    """The lorebooks attached to the group, in order."""
    ids = await services().lorebooks.group_lorebooks(current_user().id, parse_id(group_id))
    return {"lorebook_ids": [str(i) for i in ids]}
