"""Structured output: the strict JSON-schema request, and extracting and validating
the JSON a model sent back (possibly inside a code fence or prose)."""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

import pydantic

from llm.types import ChatMessage

M = TypeVar("M", bound=pydantic.BaseModel)

_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\r?\n?(.*?)```", re.DOTALL)
_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


class StructuredOutputError(ValueError):
    """The reply held no JSON object, or one that does not validate against the schema."""


_SCHEMA_MAPS = frozenset({"properties", "$defs", "definitions", "patternProperties"})


def strict_schema(node: Any) -> Any:
    """A copy of a JSON schema made acceptable to strict structured outputs: every
    object with ``properties`` requires all of them and allows no others, and
    ``default`` values are dropped (pydantic still applies them on validation).
    Free-form ``dict`` fields keep their ``additionalProperties`` schema."""
    if isinstance(node, list):
        return [strict_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "default":
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: strict_schema(sub) for name, sub in value.items()}
        else:
            out[key] = strict_schema(value)
    if out.get("type") == "object" and ("properties" in out or "additionalProperties" not in out):
        out["additionalProperties"] = False
        out["required"] = list(out.get("properties", {}))
    return out


def response_format_for(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """The ``response_format`` asking for ``model``'s JSON schema, strictly."""
    name = _NAME_CHARS.sub("_", model.__name__)[:64] or "result"
    return {
        "type": "json_schema",
        "json_schema": {
            "name": name,
            "strict": True,
            "schema": strict_schema(model.model_json_schema()),
        },
    }


def _first_object(text: str) -> str | None:
    """The first balanced ``{...}`` in ``text`` (braces inside strings do not count)."""
    start = text.find("{")
    while start != -1:
        depth = 0
        in_string = escaped = False
        for i in range(start, len(text)):
            ch = text[i]
            if in_string:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == '"':
                    in_string = False
            elif ch == '"':
                in_string = True
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    candidate = text[start : i + 1]
                    try:
                        json.loads(candidate)
                    except ValueError:
                        break
                    return candidate
        start = text.find("{", start + 1)
    return None


def extract_json(text: str) -> str | None:
    """The JSON object in a reply: the whole text, a code fence's content, or the first
    balanced object in prose. None if there is none."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            json.loads(stripped)
        except ValueError:
            pass
        else:
            return stripped
    for match in _FENCE.finditer(text):
        found = _first_object(match.group(1))
        if found is not None:
            return found
    return _first_object(text)


def parse_structured(text: str, schema: type[M]) -> M:
    """Extract and validate; ``StructuredOutputError`` says what is wrong."""
    candidate = extract_json(text)
    if candidate is None:
        raise StructuredOutputError("the reply contains no JSON object")
    try:
        return schema.model_validate_json(candidate)
    except pydantic.ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()[:10]
        )
        raise StructuredOutputError(details) from None


def feedback_message(error: StructuredOutputError) -> ChatMessage:
    """The user message that asks the model to correct an invalid structured reply."""
    return {
        "role": "user",
        "content": (
            "Your previous reply was not valid for the requested JSON schema: "
            f"{error}. Reply again with only the corrected JSON object, no prose."
        ),
    }
