"""`/`: the web page, a single-page client of the public API, served from `app/web/`.

The page (`index.html`) is answered with `Cache-Control: no-cache` so a new version is seen at
once. Its scripts and stylesheet are served under `/web/<version>/`, where the version is a hash
of the files' contents taken once at import: those answers are `immutable` for a year, and an
upgrade changes the prefix. The ES modules import each other by relative path, so they all share
the versioned prefix. The page may run only its own scripts (a strict Content-Security-Policy),
so text from models or users can never become script even if it were ever inserted as HTML.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from quart import Blueprint, Response, abort
from quart.typing import ResponseReturnValue
from quart_schema import hide

bp = Blueprint("web", __name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
YEAR = 365 * 86400


def _load_assets() -> dict[str, bytes]:
    """Every servable file of `app/web/` except the page itself, by name."""
    return {
        path.name: path.read_bytes()
        for path in sorted(WEB_DIR.iterdir())
        if path.suffix in TYPES and path.is_file()
    }


ASSETS = _load_assets()
VERSION = hashlib.sha256(
    b"".join(hashlib.sha256(name.encode() + body).digest() for name, body in ASSETS.items())
).hexdigest()[:16]
PAGE = (WEB_DIR / "index.html").read_text(encoding="utf-8").replace(
    "{{ASSETS}}", f"/web/{VERSION}"
)


def _security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/")
@hide
async def page() -> ResponseReturnValue:
    """The web page (always revalidated)."""
    response = Response(PAGE, content_type="text/html; charset=utf-8")
    response.headers["Cache-Control"] = "no-cache"
    return _security_headers(response)


@bp.get("/web/<version>/<name>")
@hide
async def asset(version: str, name: str) -> ResponseReturnValue:
    """One of the page's files; cached for good under this version's prefix."""
    body = ASSETS.get(name)
    if body is None or version != VERSION:
        abort(404)
    response = Response(body, content_type=TYPES[Path(name).suffix])
    response.headers["Cache-Control"] = f"public, max-age={YEAR}, immutable"
    return _security_headers(response)
