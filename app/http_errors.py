"""Error handlers: JSON bodies for every error on every route, never HTML or tracebacks."""

from __future__ import annotations

import logging
import math
from typing import Any

from pydantic import ValidationError
from quart import Quart, Response, has_request_context, jsonify, request
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

from app.error_info import ErrorInfo, describe

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "invalid_request",
    429: "rate_limited",
}


_OBJECT_EXPECTED = {"model_type", "model_attributes_type", "dataclass_type", "dict_type"}


def _public_msg(kind: str, msg: str) -> str:
    """pydantic's message, without the names of our classes ("instance of ChatIn")."""
    return "Input should be a JSON object" if kind in _OBJECT_EXPECTED else msg


def describe_http(exc: BaseException) -> ErrorInfo:
    """`describe`, plus the web framework's own errors (HTTP errors, request validation)."""
    if isinstance(exc, RequestSchemaValidationError):
        cause = exc.validation_error
        details: Any = None
        if isinstance(cause, ValidationError):
            details = [
                {"loc": list(e["loc"]), "msg": _public_msg(e["type"], e["msg"]), "type": e["type"]}
                for e in cause.errors(include_url=False, include_context=False, include_input=False)
            ]
        elif cause is not None:
            details = str(cause)
        return ErrorInfo(400, "invalid_request", "the request failed validation", details)
    if isinstance(exc, HTTPException):
        status = exc.code or 500
        code = _HTTP_CODES.get(status, "http_error")
        message = exc.description or exc.name
        if status == 404:
            message = "no such resource"
        return ErrorInfo(status, code, message)
    return describe(exc)



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
        info = describe_http(exc)
        if info.status >= 500 and info.code == "internal_error":
            log.exception("unhandled error", exc_info=exc)
        return error_response(info)

    @app.errorhandler(HTTPException)
    async def _http(exc: HTTPException) -> Response:
        info = describe_http(exc)
        if info.status == 413:
            limit = request.max_content_length if has_request_context() else None
            limit = limit or app.config["MAX_CONTENT_LENGTH"]
            info.message = f"the request body is larger than the limit of {limit} bytes"
        return error_response(info)
