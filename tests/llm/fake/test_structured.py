"""Structured outputs: valid JSON for the requested schema, and the JSON-breaking faults."""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Annotated, Literal

import httpx
import pytest
from pydantic import BaseModel, Field

from llm.fake import FakeUpstream, Fault
from llm.fake.schema_instance import candidates_in, schema_instance
from tests.llm.fake.wire import chat, content_of, parse_events


class Mood(StrEnum):
    calm = "calm"
    angry = "angry"


class Trait(BaseModel):
    name: str = Field(min_length=3, max_length=12)
    strength: int = Field(ge=1, le=5)


class Relation(BaseModel):
    character_id: str
    kind: Literal["friend", "rival"]


class Character(BaseModel):
    name: str
    age: int = Field(ge=18, lt=90)
    height_m: float = Field(gt=0, le=2.5)
    mood: Mood
    brave: bool
    traits: list[Trait] = Field(min_length=1, max_length=3)
    relation: Relation | None
    nickname: str | None = None
    tags: Annotated[list[str], Field(min_length=3)] = []
    score: float | int = 1
    greeting: str = Field(min_length=20)
    kind: Literal["npc"] = "npc"
    extra: dict[str, int] = {}


def structured(model: type[BaseModel], user: str = "Create a character", **extra: object) -> dict:
    schema = {"name": model.__name__, "strict": True, "schema": model.model_json_schema()}
    return chat(user, response_format={"type": "json_schema", "json_schema": schema}, **extra)


async def reply(client: httpx.AsyncClient, body: dict) -> str:
    response = await client.post("/chat/completions", json=body)
    assert response.status_code == 200
    if body["stream"]:
        return content_of(parse_events(response.text))
    return response.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize("stream", [True, False])
async def test_nested_schema_round_trips_through_pydantic(
    client: httpx.AsyncClient, stream: bool
) -> None:
    content = await reply(client, structured(Character, stream=stream))
    character = Character.model_validate_json(content)
    assert character.relation is not None  # nullable fields get values at the top level
    assert len(character.tags) >= 3
    assert await reply(client, structured(Character, stream=stream)) == content
    assert await reply(client, structured(Character, "another", stream=stream)) != content


def test_schema_instances_are_valid_for_many_seeds() -> None:
    schema = Character.model_json_schema()
    seen = set()
    for seed in range(200):
        value = schema_instance(schema, seed)
        Character.model_validate(value)
        seen.add(json.dumps(value, sort_keys=True))
    assert len(seen) > 100


class Node(BaseModel):
    label: str
    children: list[Node] = []
    parent: Node | None = None


def test_recursive_schema_terminates() -> None:
    value = schema_instance(Node.model_json_schema(), 7)
    Node.model_validate(value)


def test_keyword_edge_cases() -> None:
    schema = {
        "type": "object",
        "required": ["n", "e", "c", "u", "fixed", "ids", "multiple", "when"],
        "properties": {
            "n": {"type": "integer", "exclusiveMinimum": 5, "exclusiveMaximum": 7},
            "e": {"enum": [3, "x"]},
            "c": {"const": {"a": 1}},
            "u": {
                "type": "array",
                "items": {"enum": ["a", "b"]},
                "uniqueItems": True,
                "minItems": 2,
            },
            "fixed": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}]},
            "ids": {"type": "array", "items": {"type": "string"}, "maxItems": 0},
            "multiple": {"type": "integer", "minimum": 1, "maximum": 20, "multipleOf": 7},
            "when": {"type": "string", "format": "date-time"},
        },
    }
    value = schema_instance(schema, 1)
    assert value["n"] == 6
    assert value["e"] in (3, "x")
    assert value["c"] == {"a": 1}
    assert sorted(value["u"]) == ["a", "b"]
    assert isinstance(value["fixed"][0], int) and isinstance(value["fixed"][1], str)
    assert value["ids"] == []
    assert value["multiple"] in (7, 14)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", value["when"])


class Pick(BaseModel):
    character_ids: list[str] = Field(min_length=1, max_length=2)
    reason: str


async def test_character_ids_come_from_candidates(client: httpx.AsyncClient) -> None:
    prompt = "Who speaks next?\nCANDIDATES: c-aria, c-bram,c-cora\n"
    chosen: set[str] = set()
    for i in range(6):
        body = structured(Pick, f"{prompt} turn {i}", stream=False)
        content = (await client.post("/chat/completions", json=body)).json()["choices"][0]
        pick = Pick.model_validate_json(content["message"]["content"])
        assert set(pick.character_ids) <= {"c-aria", "c-bram", "c-cora"}
        chosen.update(pick.character_ids)
    assert len(chosen) >= 2


def test_candidates_parsing() -> None:
    messages = [{"role": "user", "content": "x\nCANDIDATES: a, b ,,c\nmore"}]
    assert candidates_in(messages) == ["a", "b", "c"]
    assert candidates_in([{"role": "user", "content": "no list"}]) == []


async def test_json_object_mode(client: httpx.AsyncClient) -> None:
    body = chat(stream=False, response_format={"type": "json_object"})
    content = (await client.post("/chat/completions", json=body)).json()["choices"][0]
    assert isinstance(json.loads(content["message"]["content"]), dict)


async def test_invalid_json_fault(upstream: FakeUpstream, client: httpx.AsyncClient) -> None:
    upstream.faults.append(Fault("invalid_json"))
    content = content_of(
        parse_events((await client.post("/chat/completions", json=structured(Character))).text)
    )
    with pytest.raises(ValueError):
        json.loads(content)
    ok = content_of(
        parse_events((await client.post("/chat/completions", json=structured(Character))).text)
    )
    Character.model_validate_json(ok)


async def test_json_in_fence_directive(client: httpx.AsyncClient) -> None:
    text = await reply(client, structured(Character, "[[fake:fault=json_in_fence]] make one"))
    match = re.search(r"```json\n(.*)\n```", text, re.DOTALL)
    assert match and not text.startswith("{")
    Character.model_validate_json(match.group(1))


async def test_structured_reply_ignores_token_setting(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    upstream.behaviour.tokens = 2
    upstream.behaviour.chunk_chars = 7
    events = parse_events((await client.post("/chat/completions", json=structured(Trait))).text)
    chunks = [e.json for e in events if e.data and e.data != "[DONE]"]
    assert len(chunks) > 3
    assert all(len(c["choices"][0]["delta"]["content"]) <= 7 for c in chunks[:-2])
    Trait.model_validate_json(content_of(events))


async def test_bad_response_format_schema_is_400(client: httpx.AsyncClient) -> None:
    body = chat(response_format={"type": "json_schema", "json_schema": {"name": "x"}})
    assert (await client.post("/chat/completions", json=body)).status_code == 400
