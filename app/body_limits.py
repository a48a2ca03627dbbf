"""Request body limits per route: `FASTNPC_MAX_BODY_BYTES` for JSON, `FASTNPC_MAX_UPLOAD_BYTES`
for the routes that take an upload (marked with `accepts_upload`).

Quart fixes a request's limit when the request object is built, before routing, from the app's
``request_class``. `limited_request_class` returns an `ApiRequest` subclass that picks the limit
there: a body declared within both limits needs no lookup; otherwise the path is
matched against the app's URL map and the upload limit applies when the matched view is
marked. Over the limit, Quart raises `RequestEntityTooLarge` (413 `payload_too_large`), from the
declared `Content-Length` before reading or while reading a chunked body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from quart import Quart
from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException

from app.request import ApiRequest

F = TypeVar("F", bound=Callable[..., Any])

_MARK = "fastnpc_accepts_upload"


def accepts_upload(view: F) -> F:
    """Mark a view as taking an upload (outermost under the route decorator)."""
    setattr(view, _MARK, True)
    return view


def _is_upload(app: Quart, method: str, path: str) -> bool:
    try:
        endpoint, _ = app.url_map.bind("localhost").match(path, method)
    except HTTPException:  # not found, wrong method, redirect
        return False
    view = app.view_functions.get(str(endpoint))
    return bool(getattr(view, _MARK, False))


def limited_request_class(app: Quart, *, body_bytes: int, upload_bytes: int) -> type[ApiRequest]:
    """The request class for ``app`` choosing each request's body limit by its route."""
    smaller = min(body_bytes, upload_bytes)  # a body within both limits needs no lookup

    class LimitedRequest(ApiRequest):
        def __init__(
            self,
            method: str,
            scheme: str,
            path: str,
            query_string: bytes,
            headers: Headers,
            *args: Any,
            **kwargs: Any,
        ) -> None:
            declared = headers.get("Content-Length", type=int)
            limit = body_bytes
            if (declared is None or declared > smaller) and _is_upload(app, method, path):
                limit = upload_bytes
            kwargs["max_content_length"] = limit
            super().__init__(method, scheme, path, query_string, headers, *args, **kwargs)

    return LimitedRequest
