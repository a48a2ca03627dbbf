"""`/docs`: the API documentation page (Swagger UI) served entirely from this installation.

The page's script and stylesheet come from the `swagger-ui-bundle-v2` package's files, served
under `/docs/assets/`, so the page works with no network beyond this server. The page reads the
OpenAPI document at `/openapi.json`.
"""

from __future__ import annotations

from pathlib import Path

from quart import Blueprint, Response, abort, send_file
from quart.typing import ResponseReturnValue
from quart_schema import hide
from swagger_ui_bundle import swagger_ui_path

bp = Blueprint("docs", __name__)

ASSET_DIR = Path(str(swagger_ui_path))
ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
INIT_JS = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
"""
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>FastNPC API</title>
  <link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <noscript>This page needs JavaScript; the OpenAPI document is at
    <a href="/openapi.json">/openapi.json</a>.</noscript>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/assets/init.js"></script>
</body>
</html>
"""


@bp.get("/docs")
@hide
async def docs_page() -> ResponseReturnValue:
    """The documentation page."""
    return Response(PAGE, content_type="text/html; charset=utf-8")


@bp.get("/docs/assets/<name>")
@hide
async def docs_asset(name: str) -> ResponseReturnValue:
    """One of the page's files, from the installed Swagger UI bundle (or its initialiser)."""
    if name == "init.js":
        return Response(INIT_JS, content_type="text/javascript; charset=utf-8")
    if name not in ASSETS:
        abort(404)
    response = await send_file(ASSET_DIR / name, mimetype=ASSETS[name])
    response.cache_control.public = True
    response.cache_control.max_age = 86400
    return response
