"""Sources for generation: search Wikipedia or Baidu Baike for the page to generate from."""

from __future__ import annotations

from quart import Blueprint
from quart.typing import ResponseReturnValue
from quart_schema import document_response, validate_querystring

from app.openapi import errors
from app.routes.common import authenticated, services
from app.schemas import SourceSearchOut, SourceSearchQuery

bp = Blueprint("sources", __name__, url_prefix="/api/sources")


@bp.get("/search")
@authenticated
@validate_querystring(SourceSearchQuery)
@document_response(SourceSearchOut)
@errors(400, 502)
async def search(query_args: SourceSearchQuery) -> ResponseReturnValue:
    """Pages matching `q` on `provider` (`wikipedia`, in `lang`, default `zh`; or `baike`: the
    entry and its same-name entries), best first, to choose the one to generate from: several
    people share a name. The source failing or timing out: 502 `source_unavailable`."""
    items = await services().sources.search(query_args.provider, query_args.q, query_args.lang)
    return {
        "items": [
            {"title": item.title, "description": item.description, "url": item.url}
            for item in items
        ]
    }
