"""`/` serves the web page; its modules and stylesheet come from this server under a versioned
prefix, cached for good, while the page itself is always revalidated."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from app.routes import web
from tests.app.cliproc import ROOT
from tests.app.harness import Live


def test_every_web_file_is_package_data() -> None:
    """An installed (non-editable) FastNPC has the page: pyproject's package-data covers it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["app"]
    files = [p.relative_to(web.WEB_DIR.parent).as_posix() for p in web.WEB_DIR.iterdir()]
    assert "web/index.html" in files and "web/app.js" in files
    for name in files:
        assert any(fnmatch(name, pattern) for pattern in patterns), name


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href"}.get(tag)
        self.urls += [value for name, value in attrs if name == wanted and value]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_page_and_assets_are_local_with_cache_headers(live: Live) -> None:
    page = await live.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-cache"
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    parser = _Assets()
    parser.feed(page.text)
    assert len(parser.urls) == 3  # favicon, stylesheet, the app module
    for url in parser.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, url  # no CDN
        assert parts.path.startswith(f"/web/{web.VERSION}/")
        asset = await live.client.get(url)
        assert asset.status_code == 200, url
        assert "immutable" in asset.headers["cache-control"]
        assert "max-age=31536000" in asset.headers["cache-control"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_every_module_import_is_served(live: Live) -> None:
    """Each relative `import ... from "./x.js"` of each module resolves under the same prefix."""
    for name in [n for n in web.ASSETS if n.endswith(".js")]:
        source = web.ASSETS[name].decode()
        assert "innerHTML" not in source or name == "dom.js", name  # text is inserted as text
        for imported in re.findall(r'from "\./([^"]+)"', source):
            r = await live.client.get(f"/web/{web.VERSION}/{imported}")
            assert r.status_code == 200, (name, imported)
            assert r.headers["content-type"] == "text/javascript; charset=utf-8"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_unknown_assets_and_old_versions_are_json_404(live: Live) -> None:
    for path in (f"/web/{web.VERSION}/nope.js", "/web/0000000000000000/app.js", "/web/x/../app.js"):
        r = await live.client.get(path)
        assert r.status_code == 404, path
        assert r.json()["error"]["code"] == "not_found"
