"""Structured output: strict schema, JSON extraction, validation and the one feedback retry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pydantic
import pytest
import trio

from llm import LLMSettings, ProtocolError, make_http_client
from llm.fake import FakeUpstream, Fault
from llm.structured import (
    StructuredOutputError,
    extract_json,
    parse_structured,
    response_format_for,
    strict_schema,
)
from tests.fakeupstream import start_fake
from tests.llm.test_client import make_client


class Stats(pydantic.BaseModel):
    strength: int
    tags: list[str] = []


class Character(pydantic.BaseModel):
    name: str
    age: int
    title: str | None = None
    stats: Stats


MESSAGES: list[Any] = [{"role": "user", "content": "Make a character"}]


@pytest.fixture
async def upstream(nursery: trio.Nursery) -> FakeUpstream:
    return await start_fake(nursery, first_token_delay=0, keepalive_interval=0)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with make_http_client(LLMSettings(api_key="k")) as client:
        yield client


def test_strict_schema() -> None:
    fmt = response_format_for(Character)
    assert fmt["type"] == "json_schema"
    spec = fmt["json_schema"]
    assert spec["name"] == "Character" and spec["strict"] is True
    schema = spec["schema"]
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["name", "age", "title", "stats"]
    nested = schema["$defs"]["Stats"]
    assert nested["additionalProperties"] is False
    assert nested["required"] == ["strength", "tags"]
    assert "default" not in nested["properties"]["tags"]


def test_strict_schema_keeps_a_field_named_properties() -> None:
    schema = {
        "type": "object",
        "properties": {"properties": {"type": "string"}, "default": {"type": "integer"}},
    }
    assert strict_schema(schema) == {
        "type": "object",
        "properties": {"properties": {"type": "string"}, "default": {"type": "integer"}},
        "additionalProperties": False,
        "required": ["properties", "default"],
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', '{"a": 1}'),
        ('  {"a": 1}\n', '{"a": 1}'),
        ('Here:\n```json\n{"a": {"b": "}"}}\n```\nDone.', '{"a": {"b": "}"}}'),
        ('```\n{"a": 1}\n```', '{"a": 1}'),
        ('Sure! {"a": "x \\" {"} and more {"b": 2}', '{"a": "x \\" {"}'),
        ('{not json} then {"ok": true}', '{"ok": true}'),
        ("no json here", None),
        ('{"a": ', None),
    ],
)
def test_extract_json(text: str, expected: str | None) -> None:
    assert extract_json(text) == expected


def test_parse_structured_errors() -> None:
    with pytest.raises(StructuredOutputError, match="no JSON object"):
        parse_structured("nothing", Stats)
    with pytest.raises(StructuredOutputError, match="strength"):
        parse_structured('{"strength": "lots"}', Stats)
    assert parse_structured('x ```json\n{"strength": 3}\n``` y', Stats) == Stats(strength=3)


async def test_structured_against_the_fake(
    upstream: FakeUpstream,
    http: httpx.AsyncClient,
) -> None:
    character = await make_client(upstream, http).structured(MESSAGES, Character)
    assert isinstance(character, Character)
    record = upstream.requests[-1]
    assert record.body["response_format"] == response_format_for(Character)
    assert len(upstream.requests) == 1


async def test_structured_in_code_fence(
    upstream: FakeUpstream,
    http: httpx.AsyncClient,
) -> None:
    upstream.faults.append(Fault("json_in_fence"))
    character = await make_client(upstream, http).structured(MESSAGES, Character)
    assert isinstance(character, Character)
    assert "```" in upstream.requests[-1].reply
    assert len(upstream.requests) == 1


async def test_structured_feedback_retry(
    upstream: FakeUpstream,
    http: httpx.AsyncClient,
) -> None:
    upstream.faults.append(Fault("invalid_json"))
    client = make_client(upstream, http)
    character = await client.structured(MESSAGES, Character, user="u1")
    assert isinstance(character, Character)
    first, second = upstream.requests
    assert second.messages[: len(MESSAGES)] == MESSAGES
    assert second.messages[-2] == {"role": "assistant", "content": first.reply}
    assert second.messages[-1]["role"] == "user"
    assert "not valid" in second.messages[-1]["content"]
    assert client.metrics.snapshot()["fake/model"]["calls"] == 2


async def test_structured_fails_after_one_retry(
    upstream: FakeUpstream,
    http: httpx.AsyncClient,
) -> None:
    upstream.faults.append(Fault("invalid_json"))
    upstream.faults.append(Fault("invalid_json"))
    upstream.faults.append(Fault("invalid_json"))
    with pytest.raises(ProtocolError, match="Character after one retry"):
        await make_client(upstream, http).structured(MESSAGES, Character)
    assert len(upstream.requests) == 2
