"""`/docs` works offline: a proper HTML document whose every asset is served by this server."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from tests.app.harness import Live


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href", "img": "src"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_docs_page_uses_only_local_assets(live: Live) -> None:
    r = await live.client.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.text.lstrip().lower().startswith("<!doctype html>")
    assert "<title>" in r.text and '<html lang="en">' in r.text
    parser = _Assets()
    parser.feed(r.text)
    assert any(u.endswith(".js") for u in parser.urls)
    assert any(u.endswith(".css") for u in parser.urls)
    for url in parser.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, url  # no CDN, no other host
        asset = await live.client.get(url)
        assert asset.status_code == 200, url
        assert asset.content
    script = await live.client.get("/docs/assets/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in script.text
    assert (await live.client.get("/openapi.json")).status_code == 200
    assert (await live.client.get("/docs/assets/..%2Fpyproject.toml")).status_code == 404
    assert (await live.client.get("/docs/assets/index.html")).status_code == 404
    paths = (await live.client.get("/openapi.json")).json()["paths"]
    assert not any(path.startswith("/docs") for path in paths)
