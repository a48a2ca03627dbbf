"""The request class: JSON bodies are read strictly and every way they can be wrong is a 4xx that
names the problem (never a 500, a traceback, or a framework or class name)."""

from __future__ import annotations

from typing import Any

import orjson
from quart_trio.wrappers.request import TrioRequest

from app.errors import InvalidRequest, UnsupportedMediaType

SEND_JSON = "send Content-Type: application/json"
IDENTITY_ENCODINGS = {"", "identity"}


class ApiRequest(TrioRequest):
    """`get_json` (what request validation calls) parses with orjson, which rejects invalid
    UTF-8 and nesting deeper than 1024 with a message and a position."""

    async def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        if cache and self._cached_json[silent] is not Ellipsis:
            return self._cached_json[silent]
        result = await self.load_json(force=force)
        if cache:
            self._cached_json[silent] = result
        return result

    async def load_json(self, *, force: bool = False) -> Any:
        """The body as JSON, or an `ApiError` saying what is wrong with it."""
        encoding = self.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in IDENTITY_ENCODINGS:
            raise UnsupportedMediaType(
                f"Content-Encoding {encoding!r} is not supported; send the body uncompressed"
            )
        if not (force or self.is_json):
            got = self.headers.get("Content-Type")
            raise InvalidRequest(
                f"{SEND_JSON} (got {got!r})" if got else f"{SEND_JSON} (none was sent)"
            )
        data = await self.get_data(cache=True, as_text=False)
        if not data.strip():
            raise InvalidRequest(f"the request body is empty; {SEND_JSON} and a JSON body")
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as error:
            raise InvalidRequest(f"request body is not valid JSON: {error}") from None
