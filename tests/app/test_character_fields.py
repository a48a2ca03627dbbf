"""The card side of characters through HTTP: greetings, tags, sources, settings; persona."""

from __future__ import annotations

from typing import Any

import pytest

from tests.app.harness import Live

SETTINGS = {
    "model": "z-ai/glm-4-32b",
    "temperature": 0.8,
    "fallback_models": ["openai/gpt-4o-mini", "qwen/qwen-2.5:free"],
    "language": "zh",
}


async def test_create_and_patch_card_fields(live: Live) -> None:
    alice = await live.register()
    r = await alice.request(
        "POST",
        "/api/characters",
        json={
            "name": "林黛玉",
            "greeting": "{{user}}，你来了。",
            "alternate_greetings": ["又是你。"],
            "tags": ["红楼梦", "classic"],
            "sources": [
                {"provider": "baike", "title": "林黛玉", "url": "https://baike.baidu.com/x"}
            ],
            "settings": SETTINGS,
        },
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["greeting"] == "{{user}}，你来了。"
    assert created["alternate_greetings"] == ["又是你。"]
    assert created["tags"] == ["红楼梦", "classic"]
    assert created["sources"] == [
        {"provider": "baike", "title": "林黛玉", "url": "https://baike.baidu.com/x"}
    ]
    assert created["settings"] == SETTINGS
    assert created["avatar_url"] is None

    cid = created["id"]
    r = await alice.request(
        "PATCH",
        f"/api/characters/{cid}",
        json={"greeting": None, "tags": [], "settings": {"temperature": 1.2, "language": None}},
    )
    assert r.status_code == 200, r.text
    patched = r.json()
    assert patched["greeting"] is None and patched["tags"] == []
    assert patched["alternate_greetings"] == ["又是你。"]  # not given: kept
    assert patched["settings"] == SETTINGS | {"temperature": 1.2, "language": None}
    r = await alice.request("GET", f"/api/characters/{cid}")
    assert r.json() == patched


async def test_plain_character_has_empty_card_fields(live: Live) -> None:
    alice = await live.register()
    created = await alice.character("Mira")
    assert created["greeting"] is None and created["alternate_greetings"] == []
    assert created["tags"] == [] and created["sources"] == [] and created["avatar_url"] is None
    assert created["settings"] == {
        "model": None,
        "temperature": None,
        "fallback_models": [],
        "language": None,
    }


@pytest.mark.parametrize(
    "body",
    [
        {"settings": {"temperature": 2.5}},
        {"settings": {"temperature": -0.1}},
        {"settings": {"temperature": "1"}},
        {"settings": {"temperature": True}},
        {"settings": {"model": ""}},
        {"settings": {"model": "has space"}},
        {"settings": {"model": "x" * 101}},
        {"settings": {"fallback_models": ["a", "b", "c", "d"]}},
        {"settings": {"fallback_models": ["ok", "not ok!"]}},
        {"settings": {"language": "fr"}},
        {"settings": {"unknown": 1}},
        {"tags": "not a list"},
        {"tags": [""]},
        {"alternate_greetings": [1]},
        {"greeting": 5},
        {"sources": [{"provider": "x", "title": "t"}]},
    ],
)
async def test_invalid_card_fields_are_400_and_change_nothing(
    live: Live, body: dict[str, Any]
) -> None:
    alice = await live.register()
    created = await alice.character("Mira")
    r = await alice.request("POST", "/api/characters", json={"name": "X", **body})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request", r.text
    r = await alice.request("PATCH", f"/api/characters/{created['id']}", json=body)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request", r.text
    r = await alice.request("GET", "/api/characters")
    assert r.json()["items"] == [created]


async def test_persona(live: Live) -> None:
    alice = await live.register()
    bob = await live.register("bob")
    r = await alice.request("GET", "/api/me/persona")
    assert r.status_code == 200 and r.json() == {"name": None, "description": ""}
    r = await alice.request("PUT", "/api/me/persona", json={"name": "宝玉"})
    assert r.status_code == 200 and r.json() == {"name": "宝玉", "description": ""}
    r = await alice.request("PUT", "/api/me/persona", json={"description": "贾府的公子。"})
    assert r.json() == {"name": "宝玉", "description": "贾府的公子。"}
    r = await alice.request("GET", "/api/me/persona")
    assert r.json() == {"name": "宝玉", "description": "贾府的公子。"}
    r = await bob.request("GET", "/api/me/persona")
    assert r.json() == {"name": None, "description": ""}

    for bad in ({"name": "x" * 65}, {"description": "x" * 2001}, {"name": 3}, {"other": "x"}):
        r = await alice.request("PUT", "/api/me/persona", json=bad)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request", bad
    r = await alice.request("PUT", "/api/me/persona", json={"name": "x" * 64, "description": ""})
    assert r.json() == {"name": "x" * 64, "description": ""}
    r = await live.client.get("/api/me/persona")
    assert r.status_code == 401
