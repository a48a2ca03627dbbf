"""The OpenAPI document: the decorators routes use to describe themselves, and the one place
that adds what quart-schema's decorators cannot express.

Routes document their success body with ``document_response`` and their errors with
``errors(...)`` (the JSON error body of API.md); ``routes.common.authenticated`` adds the bearer
security requirement and 401 itself, ``admin_only`` adds 403. ``FastNPCOpenAPI``
(quart-schema's provider, subclassed) then marks request bodies and required query parameters
required, adds
``text/event-stream`` to the success response of ``streams`` routes, and describes bodiless
(``no_content_response``) and non-JSON (``text_response``) answers.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any, TypeVar

from quart_schema import HttpSecurityScheme, OpenAPIProvider, document_response
from quart_schema.validation import DataSource
from werkzeug.routing import Rule

from app.schemas import ErrorOut

F = TypeVar("F", bound=Callable[..., Any])

BEARER = "bearer"
SECURITY_SCHEMES: dict[str, Any] = {BEARER: HttpSecurityScheme(scheme="bearer")}

# the errors of a route that calls the LLM: a generation already running, rate limits,
# the provider failing (502), overloaded or unconfigured (503), timing out (504)
LLM_ERRORS = (409, 429, 502, 503, 504)

_STREAM = "_fastnpc_openapi_stream"
_NO_CONTENT = "_fastnpc_openapi_no_content"
_TEXT = "_fastnpc_openapi_text"
_FOLLOW = "_fastnpc_openapi_follow"
_RAW_BODY = "_fastnpc_openapi_raw_body"


def errors(*statuses: int) -> Callable[[F], F]:
    """Document that the route answers these statuses with the JSON error body."""

    def decorate(func: F) -> F:
        for status in statuses:
            func = document_response(ErrorOut, status)(func)
        return func

    return decorate


def streams(func: F) -> F:
    """A [stream] route: its success status also answers ``text/event-stream``."""
    setattr(func, _STREAM, True)
    return func


def no_content_response(func: F) -> F:
    """The route succeeds with 204 and no body."""
    setattr(func, _NO_CONTENT, True)
    return func


def follows(func: F) -> F:
    """A follow route: 200 `text/event-stream` of a running generation (resuming after the
    `Last-Event-ID` header), or 204 when nothing runs."""
    setattr(func, _FOLLOW, True)
    setattr(func, _NO_CONTENT, True)
    return func


def text_response(content_type: str, description: str, *more: str) -> Callable[[F], F]:
    """The route succeeds with 200 and a body of ``content_type`` (or one of ``more``) that
    quart-schema does not describe (text, images, a card as JSON or PNG)."""

    def decorate(func: F) -> F:
        setattr(func, _TEXT, ((content_type, *more), description))
        return func

    return decorate


def raw_body(description: str, *content_types: str) -> Callable[[F], F]:
    """The route reads its body itself (an image, a card, a conversation file): document it as
    required, in each of ``content_types`` (JSON types as an object, others as bytes)."""

    def decorate(func: F) -> F:
        setattr(func, _RAW_BODY, (content_types, description))
        return func

    return decorate


def _schema_of(content_type: str) -> dict[str, Any]:
    if content_type.endswith("json"):
        return {"type": "object"}
    return {"type": "string", "format": "binary"}


_SSE = {
    "schema": {
        "type": "string",
        "description": "Server-sent events: `id:`, `event:` and one JSON `data:` line each; "
        "the last event is `done` or `error`.",
    }
}


class FastNPCOpenAPI(OpenAPIProvider):
    """quart-schema's generator, plus what its decorators cannot say (see the module)."""

    def schema(self) -> dict[str, Any]:
        document: dict[str, Any] = _json_schema_bounds(super().schema())
        return document

    def build_request_body(
        self, model: Any, source: DataSource
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        body, definitions = super().build_request_body(model, source)
        body["required"] = True
        return body, definitions

    def build_querystring_parameters(
        self, model: Any
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        # quart-schema drops the model's `required` list: mark those parameters required
        parameters, definitions = super().build_querystring_parameters(model)
        required = set(model.model_json_schema().get("required", []))
        for parameter in parameters:
            if parameter["name"] in required:
                parameter["required"] = True
        return parameters, definitions

    def build_paths(self, rule: Rule) -> tuple[dict[str, Any], dict[str, Any]]:
        paths, components = super().build_paths(rule)
        func = self._app.view_functions[rule.endpoint]
        for path_item in paths.values():
            for method, operation in path_item.items():
                path_item[method] = _complete(operation, func)
        return paths, components


_BOUNDS = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}


def _json_schema_bounds(node: Any) -> Any:
    """pydantic writes the bounds of an optional number that has a validator of its own (our
    `Integer | None`) under its Python names (`ge`, `le`): spell them as JSON Schema does."""
    if isinstance(node, dict):
        numeric = node.get("type") in ("integer", "number")
        return {
            (_BOUNDS[k] if numeric and k in _BOUNDS else k): _json_schema_bounds(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_json_schema_bounds(v) for v in node]
    return node


def _complete(operation: dict[str, Any], func: Any) -> dict[str, Any]:
    operation = dict(operation)  # quart-schema shares one object between a rule's methods
    responses: dict[Any, Any] = {str(k): v for k, v in operation["responses"].items()}
    if getattr(func, _NO_CONTENT, False):
        responses["204"] = {"description": "No content."}
    if (text := getattr(func, _TEXT, None)) is not None:
        content_types, description = text
        responses["200"] = {
            "description": description,
            "content": {t: {"schema": _schema_of(t)} for t in content_types},
        }
    if (raw := getattr(func, _RAW_BODY, None)) is not None:
        content_types, description = raw
        operation["requestBody"] = {
            "description": description,
            "required": True,
            "content": {t: {"schema": _schema_of(t)} for t in content_types},
        }
    if getattr(func, _FOLLOW, False):
        responses["200"] = {
            "description": "The generation's events (those after `Last-Event-ID`), then live ones.",
            "content": {"text/event-stream": _SSE},
        }
        operation["parameters"] = [
            *operation.get("parameters", []),
            {
                "name": "Last-Event-ID",
                "in": "header",
                "required": False,
                "description": "Resume after this event id (as sent in an earlier stream).",
                "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
            },
        ]
    if getattr(func, _STREAM, False):
        success = next(s for s in sorted(responses) if s.startswith("2"))
        json_answer = responses[success]
        if success == "200":
            responses["200"] = {
                **json_answer,
                "content": {**json_answer["content"], "text/event-stream": _SSE},
            }
        else:  # JSON answers `success` (201); a stream starts with 200
            responses["200"] = {
                "description": "The stream (with `Accept: text/event-stream`).",
                "content": {"text/event-stream": _SSE},
            }
    for status, response in responses.items():
        if not response.get("description"):
            response["description"] = HTTPStatus(int(status)).phrase
    operation["responses"] = dict(sorted(responses.items()))
    return operation
