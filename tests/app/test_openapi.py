"""The OpenAPI document served at /openapi.json describes the API as it behaves: statuses,
security, required bodies, streams, and the fields responses carry."""

from __future__ import annotations

from typing import Any

import pytest

from tests.app.harness import Live

PUBLIC = {
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("post", "/api/auth/register"),
    ("post", "/api/auth/login"),
    ("get", "/media/avatars/{name}"),
}
FOLLOWS = {"/api/characters/{character_id}/chat/stream", "/api/groups/{group_id}/stream"}
STREAMS = {
    "/api/characters/generate",
    "/api/characters/{character_id}/generate/{category}",
    "/api/characters/{character_id}/chat",
    "/api/characters/{character_id}/chat/regenerate",
    "/api/groups/{group_id}/messages",
    "/api/characters/import",
    "/api/groups/{group_id}/continue",
    "/api/characters/{character_id}/chat/messages/{message_id}/branch",
    "/api/characters/{character_id}/chat/messages/{message_id}/regenerate",
    "/api/groups/{group_id}/messages/{message_id}/branch",
    "/api/groups/{group_id}/messages/{message_id}/regenerate",
}
NO_CONTENT = {
    ("post", "/api/auth/logout"),
    ("post", "/api/me/password"),
    ("delete", "/api/me"),
    ("delete", "/api/characters/{character_id}"),
    ("delete", "/api/characters/{character_id}/chat"),
    ("delete", "/api/groups/{group_id}"),
    ("delete", "/api/characters/{character_id}/chat/messages/{message_id}"),
    ("delete", "/api/groups/{group_id}/messages/{message_id}"),
    ("delete", "/api/lorebooks/{lorebook_id}"),
    ("delete", "/api/lorebooks/{lorebook_id}/entries/{entry_id}"),
    ("delete", "/api/characters/{character_id}/chat/memories/{memory_id}"),
    ("delete", "/api/groups/{group_id}/memories/{memory_id}"),
    # follow: 204 when nothing runs
    ("get", "/api/characters/{character_id}/chat/stream"),
    ("get", "/api/groups/{group_id}/stream"),
}


@pytest.fixture
async def spec(live: Live) -> dict[str, Any]:
    r = await live.client.get("/openapi.json")
    assert r.status_code == 200
    return r.json()  # type: ignore[no-any-return]


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    ]


def _schema(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


async def test_security_only_where_a_token_is_needed(spec: dict[str, Any]) -> None:
    assert "security" not in spec
    assert spec["components"]["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}
    operations = _operations(spec)
    assert len(operations) >= 36
    for method, path, operation in operations:
        if (method, path) in PUBLIC:
            assert "security" not in operation, (method, path)
            assert "401" not in operation["responses"] or path == "/api/auth/login"
        else:
            assert operation["security"] == [{"bearer": []}], (method, path)
            assert "401" in operation["responses"], (method, path)
        if path.startswith("/api/admin/"):
            assert "403" in operation["responses"], (method, path)


async def test_every_status_is_documented_with_the_json_error(spec: dict[str, Any]) -> None:
    for method, path, operation in _operations(spec):
        responses = operation["responses"]
        assert any(s.startswith("2") for s in responses), (method, path)
        for status, response in responses.items():
            assert response["description"], (method, path, status)
            if int(status) >= 400 and path != "/readyz":
                schema = response["content"]["application/json"]["schema"]
                assert schema["title"] == "ErrorOut", (method, path, status)
                assert schema["required"] == ["error"], (method, path, status)
        if "requestBody" in operation:
            assert operation["requestBody"]["required"] is True, (method, path)
            assert {"400", "413"} <= set(responses), (method, path)
        if "{" in path:
            assert "404" in responses, (method, path)
        assert ("204" in responses) == ((method, path) in NO_CONTENT), (method, path)
    detail = _schema(spec, {"$ref": "#/components/schemas/ErrorDetail"})
    assert set(detail["required"]) == {"code", "message"}
    login = spec["paths"]["/api/auth/login"]["post"]["responses"]
    assert {"200", "400", "401", "403", "429"} <= set(login)
    assert "409" in spec["paths"]["/api/admin/users/{user_id}"]["patch"]["responses"]
    assert "503" in spec["paths"]["/readyz"]["get"]["responses"]
    metrics = spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain; version=1.0.0; charset=utf-8"] or all(
        ct.startswith("text/plain") for ct in metrics
    )


async def test_stream_routes_document_both_answers(spec: dict[str, Any]) -> None:
    for method, path, operation in _operations(spec):
        content = operation["responses"].get("200", {}).get("content", {})
        sse = (path in STREAMS and method == "post") or (path in FOLLOWS and method == "get")
        assert ("text/event-stream" in content) == sse, path
        if path in FOLLOWS:
            assert [p["name"] for p in operation["parameters"] if p["in"] == "header"] == [
                "Last-Event-ID"
            ]
    generate = spec["paths"]["/api/characters/generate"]["post"]["responses"]
    assert "application/json" in generate["201"]["content"]
    chat = spec["paths"]["/api/characters/{character_id}/chat"]["post"]["responses"]["200"]
    assert "application/json" in chat["content"]


async def test_response_schemas_list_the_fields_returned(spec: dict[str, Any]) -> None:
    paths = spec["paths"]
    regenerate = paths["/api/characters/{character_id}/chat/regenerate"]["post"]["responses"]
    reply = _schema(spec, regenerate["200"]["content"]["application/json"]["schema"])
    assert set(reply["properties"]) == {"reply", "lore"}
    memories = paths["/api/characters/{character_id}/chat/memories"]["get"]["responses"]
    listed = _schema(spec, memories["200"]["content"]["application/json"]["schema"])
    memory = _schema(spec, listed["properties"]["items"]["items"])
    assert {
        "id",
        "kind",
        "content",
        "importance",
        "pinned",
        "origin",
        "edited_at",
        "created_at",
    } <= set(memory["required"])


async def test_documented_fields_match_real_answers(live: Live, spec: dict[str, Any]) -> None:
    """The fields a real answer carries are the ones its schema names (and all required ones)."""
    alice = await live.register()
    mira = await alice.character("Mira")
    r = await alice.request("POST", f"/api/characters/{mira['id']}/chat", json={"content": "hi"})
    answers = {
        "/api/characters/{character_id}": mira,
        "/api/characters/{character_id}/chat": r.json(),
        "/api/me": (await alice.request("GET", "/api/me")).json(),
    }
    for path, body in answers.items():
        operation = spec["paths"][path]["post" if path.endswith("/chat") else "get"]
        schema = _schema(
            spec, operation["responses"]["200"]["content"]["application/json"]["schema"]
        )
        assert set(body) == set(schema["properties"]), path
        assert set(schema["required"]) <= set(body), path
    message = _schema(spec, {"$ref": "#/components/schemas/MessageOut"})
    assert set(answers["/api/characters/{character_id}/chat"]["reply"]) == set(
        message["properties"]
    )
