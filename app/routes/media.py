"""Public media: avatars by content hash (no authentication; the hash is the capability)."""

from __future__ import annotations

import re

from quart import Blueprint, Response
from quart.typing import ResponseReturnValue

from app.errors import NotFound
from app.openapi import errors, text_response
from app.routes.common import services

bp = Blueprint("media", __name__, url_prefix="/media")

_SHA256 = re.compile(r"[0-9a-f]{64}")
IMMUTABLE = "public, max-age=31536000, immutable"


@bp.get("/avatars/<name>")
@text_response("image/png", "The avatar, a 256x256 PNG.")
@errors(404)
async def avatar(name: str) -> ResponseReturnValue:
    """An avatar PNG (`<sha256>.png`), cached for a year: its content never changes."""
    sha, dot, ext = name.partition(".")
    if not (dot and ext == "png" and _SHA256.fullmatch(sha)):
        raise NotFound("no such avatar")
    png = await services().characters.avatar(sha)
    response = Response(png, status=200, content_type="image/png")
    response.headers["Cache-Control"] = IMMUTABLE
    response.headers["ETag"] = f'"{sha}"'
    return response
