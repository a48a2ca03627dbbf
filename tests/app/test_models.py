"""API.md's model ids over HTTP: 1–100 of [A-Za-z0-9._:/-]; with FASTNPC_MODELS, only those."""

from __future__ import annotations

from typing import Any

import pytest

from tests.app.harness import Live, Session, live_server, make_settings

BAD_IDS = ["", "has space", "semi;colon", "x" * 101, "ünïcode", "new\nline", "a/b?c=d"]


async def _generate(live: Live, model: Any) -> tuple[Session, Any]:
    alice = await live.register()
    r = await alice.request(
        "POST", "/api/characters/generate", json={"name": "Tom", "model": model}
    )
    return alice, r


@pytest.mark.parametrize("model", BAD_IDS)
async def test_malformed_model_is_400(live: Live, fake: Any, model: str) -> None:
    alice, r = await _generate(live, model)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request"
    assert "model id" in error["message"] and "letters, digits" in error["message"]
    assert error["details"][0]["loc"] == ["model"]
    assert fake.requests == []  # nothing reached the LLM
    r = await alice.request("GET", "/api/characters")
    assert r.json()["items"] == []  # nothing was created


async def test_well_formed_model_is_used_when_no_list_is_set(live: Live, fake: Any) -> None:
    model = "vendor/Model-1.5:free_" + "x" * 78  # 100 characters, every allowed kind
    assert len(model) == 100
    _, r = await _generate(live, model)
    assert r.status_code == 201, r.text
    assert {req.body["model"] for req in fake.requests} == {model}


async def test_only_configured_models_when_fastnpc_models_is_set(db_url: str, fake: Any) -> None:
    settings = make_settings(db_url, fake.base_url, llm={"models": "good/one,good/two"})
    async with live_server(settings) as live:
        _, r = await _generate(live, "other/model")
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["code"] == "invalid_request"
        assert "'other/model' is not available" in error["message"]
        assert "good/one, good/two" in error["message"]
        assert fake.requests == []
        alice = await live.register("bob")
        r = await alice.request(
            "POST", "/api/characters/generate", json={"name": "Tom", "model": "good/two"}
        )
        assert r.status_code == 201, r.text
        assert {req.body["model"] for req in fake.requests} == {"good/two"}
        # no model: the default (FASTNPC_MODEL) is not subject to the list
        r = await alice.request("POST", "/api/characters/generate", json={"name": "Ann"})
        assert r.status_code == 201, r.text
