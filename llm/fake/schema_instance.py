"""A deterministic, valid JSON instance for a JSON Schema (the fake's structured outputs).

Handles what pydantic's ``model_json_schema()`` produces: ``$ref`` into ``$defs`` /
``definitions``, ``allOf`` / ``anyOf`` / ``oneOf``, nullable ``type`` lists, objects (required and
optional properties, ``additionalProperties``), arrays (``items``, ``prefixItems``, ``minItems``,
``maxItems``, ``uniqueItems``), strings (``enum``, ``const``, ``minLength``, ``maxLength``, common
``format``s), integers and numbers with bounds and ``multipleOf``, booleans and null. ``pattern``
is not honoured. Strings are plausible for their property name (``name`` → a name, ``description``
→ a sentence, ``*_id`` → an id).

One convenience for the group-chat moderator: a ``character_ids`` property (array of strings) picks
from the ids listed on a ``CANDIDATES: id1,id2,id3`` line of the prompt, when there is one.
"""

from __future__ import annotations

import math
import random
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from llm.fake.content import message_text, sentences

_CANDIDATES = re.compile(r"^\s*CANDIDATES:\s*(.+?)\s*$", re.MULTILINE)
_MAX_DEPTH = 6

_NAMES = ("Elara Voss", "Tomas Reed", "Mira Čech", "Ren Takeda", "Sable", "Old Brannoc")
_WORDS = (
    "wistful",
    "stormy",
    "lantern",
    "harbour",
    "ember",
    "quiet",
    "silver",
    "wanderer",
    "café",
    "moss",
)
_LONG_TEXT_HINTS = (
    "description",
    "bio",
    "backstory",
    "background",
    "personality",
    "summary",
    "content",
    "text",
    "reply",
    "greeting",
    "appearance",
    "memory",
    "memories",
    "notes",
    "reason",
    "message",
    "dialogue",
    "style",
    "story",
    "prompt",
)


def candidates_in(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """The ids of the last ``CANDIDATES: a,b,c`` line in the messages (empty if none)."""
    found: list[str] = []
    for message in messages:
        for match in _CANDIDATES.finditer(message_text(message)):
            found = [c.strip() for c in match.group(1).split(",") if c.strip()]
    return found


def schema_instance(schema: Mapping[str, Any], seed: int, *, candidates: Sequence[str] = ()) -> Any:
    """A JSON value valid against ``schema``, the same for the same seed."""
    return _Generator(schema, random.Random(seed), list(candidates)).value(schema, "value", 0)


class _Generator:
    def __init__(self, root: Mapping[str, Any], rng: random.Random, candidates: list[str]) -> None:
        self.root = root
        self.rng = rng
        self.candidates = candidates

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        seen = 0
        while "$ref" in schema:
            ref = schema["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#"):
                raise ValueError(f"unsupported $ref {ref!r}")
            target: Any = self.root
            for part in ref[1:].split("/")[1:]:
                target = target[part.replace("~1", "/").replace("~0", "~")]
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **siblings}
            seen += 1
            if seen > 64:
                raise ValueError("$ref cycle")
        if "allOf" in schema:
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                resolved = self.resolve(part)
                for key, val in resolved.items():
                    if key == "properties":
                        merged["properties"] = {**merged.get("properties", {}), **val}
                    elif key == "required":
                        merged["required"] = [*merged.get("required", []), *val]
                    else:
                        merged.setdefault(key, val)
            return self.resolve(merged)
        return schema

    def value(self, raw: Mapping[str, Any] | bool, name: str, depth: int) -> Any:
        if raw is True or raw is False:
            return self.string({}, name)
        schema = self.resolve(raw)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self.rng.choice(list(schema["enum"]))
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return self.value(self.pick_option(schema, key, depth), name, depth)
        kind = schema.get("type")
        if isinstance(kind, list):
            non_null = [k for k in kind if k != "null"]
            if not non_null or ("null" in kind and depth >= _MAX_DEPTH):
                return None
            kind = non_null[0]
        if kind is None:
            if "properties" in schema or "additionalProperties" in schema:
                kind = "object"
            elif "items" in schema or "prefixItems" in schema:
                kind = "array"
            else:
                kind = "string"
        if kind == "object":
            return self.object(schema, depth)
        if kind == "array":
            return self.array(schema, name, depth)
        if kind == "integer":
            return self.integer(schema)
        if kind == "number":
            return self.number(schema)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        return self.string(schema, name)

    def pick_option(self, schema: Mapping[str, Any], key: str, depth: int) -> Mapping[str, Any]:
        options = [self.resolve(o) for o in schema[key]]
        extra = {k: v for k, v in schema.items() if k not in (key, "default", "title")}

        def is_null(option: Mapping[str, Any]) -> bool:
            return option.get("type") == "null"

        preferred = [o for o in options if is_null(o) == (depth >= _MAX_DEPTH)]
        option = (preferred or options)[0]
        return {**extra, **option}

    def object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties: Mapping[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", []))
        result: dict[str, Any] = {}
        for prop, sub in properties.items():
            if prop not in required and depth >= _MAX_DEPTH:
                continue
            if prop == "character_ids" and self.candidates and self.is_string_array(sub):
                result[prop] = self.pick_candidates(self.resolve(sub))
            else:
                result[prop] = self.value(sub, prop, depth + 1)
        extra = schema.get("additionalProperties")
        wanted = max(int(schema.get("minProperties", 0)), 0 if properties else 1)
        if isinstance(extra, Mapping) and depth < _MAX_DEPTH:
            index = 0
            while len(result) < wanted:
                key = "example" if index == 0 else f"example_{index}"
                index += 1
                if key not in result:
                    result[key] = self.value(extra, key, depth + 1)
        return result

    def is_string_array(self, raw: Mapping[str, Any]) -> bool:
        schema = self.resolve(raw)
        items = schema.get("items")
        return (
            schema.get("type") == "array"
            and isinstance(items, Mapping)
            and self.resolve(items).get("type") == "string"
        )

    def pick_candidates(self, schema: Mapping[str, Any]) -> list[str]:
        low = int(schema.get("minItems", 1))
        high = int(schema.get("maxItems", len(self.candidates)))
        count = max(low, min(high, 2, len(self.candidates)))  # two when allowed
        count = min(count, high)
        if count <= len(self.candidates):
            return self.rng.sample(self.candidates, count)
        return [self.candidates[i % len(self.candidates)] for i in range(count)]

    def array(self, schema: Mapping[str, Any], name: str, depth: int) -> list[Any]:
        low = int(schema.get("minItems", 0))
        high = schema.get("maxItems")
        count = low if depth >= _MAX_DEPTH else max(low, 2)
        if high is not None:
            count = min(count, int(high))
        result: list[Any] = []
        prefix = schema.get("prefixItems", [])
        items = schema.get("items", {})
        singular = name[:-1] if name.endswith("s") and len(name) > 3 else name
        attempts = 0
        while len(result) < count and attempts < count * 20 + 20:
            attempts += 1
            index = len(result)
            sub = prefix[index] if index < len(prefix) else items
            if sub is False:
                break
            item = self.value(sub, singular, depth + 1)
            if schema.get("uniqueItems") and item in result:
                continue
            result.append(item)
        return result

    def integer(self, schema: Mapping[str, Any]) -> int:
        low = _bound(schema, "minimum", "exclusiveMinimum", math.ceil, 1)
        high = _bound(schema, "maximum", "exclusiveMaximum", math.floor, -1)
        if low is None:
            low = 1 if high is None else high - 9
        if high is None:
            high = low + 9
        step = schema.get("multipleOf")
        if isinstance(step, int) and step > 0:
            first = math.ceil(low / step) * step
            multiples = range(first, high + 1, step)
            return self.rng.choice(multiples) if multiples else first
        return self.rng.randint(low, high) if low <= high else low

    def number(self, schema: Mapping[str, Any]) -> float:
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        fraction = self.rng.choice((0.25, 0.5, 0.75))
        if low is not None and high is not None:
            value = float(low) + (float(high) - float(low)) * fraction
        elif low is not None:
            value = float(low) + 1 + fraction
        elif high is not None:
            value = float(high) - 1 - fraction
        else:
            value = self.rng.choice((0.5, 1.5, 2.75, 3.25))
        step = schema.get("multipleOf")
        if isinstance(step, int | float) and step > 0:
            value = math.ceil(value / step) * step
        return value

    def string(self, schema: Mapping[str, Any], name: str) -> str:
        text = self.plain_string(schema, name)
        min_length = int(schema.get("minLength", 0))
        max_length = schema.get("maxLength")
        while len(text) < min_length:
            text += " " + self.rng.choice(_WORDS)
        if max_length is not None and len(text) > int(max_length):
            text = text[: int(max_length)].rstrip()
            text += "a" * (min_length - len(text))
        return text

    def plain_string(self, schema: Mapping[str, Any], name: str) -> str:
        fmt = schema.get("format")
        rng = self.rng
        if fmt == "date-time":
            return f"2024-05-{rng.randint(1, 28):02d}T12:00:00Z"
        if fmt == "date":
            return f"2024-05-{rng.randint(1, 28):02d}"
        if fmt == "time":
            return f"12:{rng.randint(0, 59):02d}:00"
        if fmt == "email":
            return f"npc{rng.randint(1, 999)}@example.com"
        if fmt in ("uri", "url"):
            return f"https://example.com/{name}/{rng.randint(1, 999)}"
        if fmt == "uuid":
            return str(uuid.UUID(int=rng.getrandbits(128), version=4))
        lowered = name.lower()
        if lowered == "id" or lowered.endswith("_id") or name.endswith("Id"):
            stem = lowered.removesuffix("id").rstrip("_") or "id"
            return f"{stem}-{rng.randint(1000, 9999)}"
        if "name" in lowered:
            return rng.choice(_NAMES)
        if any(hint in lowered for hint in _LONG_TEXT_HINTS):
            return sentences(rng, rng.randint(1, 2))
        return f"{rng.choice(_WORDS)} {rng.choice(_WORDS)}"


def _bound(
    schema: Mapping[str, Any], inclusive: str, exclusive: str, rounding: Any, nudge: int
) -> int | None:
    if inclusive in schema:
        return int(rounding(schema[inclusive]))
    if exclusive in schema:
        edge = schema[exclusive]
        rounded = int(rounding(edge))
        return rounded + nudge if rounded == edge else rounded
    return None
