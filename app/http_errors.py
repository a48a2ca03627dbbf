"""Error handlers: JSON bodies for every error on every route, never HTML or tracebacks."""

from __future__ import annotations

import logging
import math

from quart import Quart, Response, jsonify
from werkzeug.exceptions import HTTPException

from app.error_info import ErrorInfo, describe

log = logging.getLogger(__name__)


def error_response(info: ErrorInfo) -> Response:
    response = jsonify(info.body())
    response.status_code = info.status
    if info.status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    if info.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(info.retry_after)))
    return response


def install_error_handlers(app: Quart) -> None:
    """Register JSON handlers for every error the app can raise."""

    @app.errorhandler(Exception)
    async def _any(exc: Exception) -> Response:
        info = describe(exc)
        if info.status >= 500 and info.code == "internal_error":
            log.exception("unhandled error", exc_info=exc)
        return error_response(info)

    @app.errorhandler(HTTPException)
    async def _http(exc: HTTPException) -> Response:
        info = describe(exc)
        if info.status == 413:
            limit = app.config["MAX_CONTENT_LENGTH"]
            info.message = f"the request body is larger than the limit of {limit} bytes"
        return error_response(info)
