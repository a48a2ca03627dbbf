from __future__ import annotations

from llm.fake import FakeUpstream, Fault
from tests.app.harness import Live

IDENTITY = {
    "name": "Mira",
    "age": "31",
    "gender": "female",
    "occupation": "smuggler",
    "background": "grew up on the docks",
    "appearance": "scar over one eye",
    "titles": "the Quiet",
}


async def test_crud(live: Live) -> None:
    alice = await live.register()
    created = await alice.character("Mira", identity=IDENTITY)
    assert created["status"] == "partial"
    assert created["profile"]["identity"]["occupation"] == "smuggler"
    assert created["profile"]["world"] is None
    assert set(created["profile"]) == {
        "identity",
        "personality",
        "backstory",
        "abilities",
        "dialogue",
        "tasks",
        "world",
        "system",
    }
    cid = created["id"]

    r = await alice.request("GET", f"/api/characters/{cid}")
    assert r.status_code == 200 and r.json()["profile"] == created["profile"]
    r = await alice.request("GET", "/api/characters")
    assert [c["id"] for c in r.json()["items"]] == [cid]

    r = await alice.request(
        "PATCH",
        f"/api/characters/{cid}",
        json={"name": "Mira Vale", "profile": {"world": {"era": "iron"}}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Mira Vale"
    assert r.json()["profile"]["world"] == {"era": "iron"}
    assert r.json()["profile"]["identity"]["occupation"] == "smuggler"

    r = await alice.request("DELETE", f"/api/characters/{cid}")
    assert r.status_code == 204
    r = await alice.request("GET", f"/api/characters/{cid}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_validation_changes_nothing(live: Live) -> None:
    alice = await live.register()
    for body in (
        {"name": ""},
        {"name": "X", "profile": {"nonsense": {}}},
        {"name": "X", "profile": {"backstory": {"experiences": "not a list"}}},
        {"name": "X", "extra": 1},
    ):
        r = await alice.request("POST", "/api/characters", json=body)
        assert r.status_code == 400, body
        assert r.json()["error"]["code"] == "invalid_request"
    r = await alice.request("GET", "/api/characters")
    assert r.json()["items"] == []


async def test_isolation(live: Live) -> None:
    alice = await live.register("alice")
    bob = await live.register("bob")
    mira = await alice.character("Mira")
    for method, path in (
        ("GET", f"/api/characters/{mira['id']}"),
        ("PATCH", f"/api/characters/{mira['id']}"),
        ("DELETE", f"/api/characters/{mira['id']}"),
        ("GET", f"/api/characters/{mira['id']}/chat/messages"),
        ("GET", f"/api/characters/{mira['id']}/chat/memories"),
        ("POST", f"/api/characters/{mira['id']}/chat"),
        ("GET", "/api/characters/not-an-id"),
    ):
        kwargs = {"json": {"content": "hi"}} if method == "POST" else {}
        if method == "PATCH":
            kwargs = {"json": {"name": "stolen"}}
        r = await bob.request(method, path, **kwargs)
        assert r.status_code == 404, (method, path, r.text)
    r = await bob.request("GET", "/api/characters")
    assert r.json()["items"] == []


async def test_generate_json(live: Live, fake: FakeUpstream) -> None:
    alice = await live.register()
    r = await alice.request(
        "POST",
        "/api/characters/generate",
        # each call takes a second before its first token: calls issued together overlap
        json={"name": "Old Tom [[fake:ttft=1]]", "source_text": "A lighthouse keeper."},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "ready"
    assert all(body["profile"][c] for c in body["profile"])
    assert isinstance(body["profile"]["backstory"]["experiences"], list)
    assert body["greeting"]  # generated too, by the dialogue call
    assert "greeting" not in body["profile"]["dialogue"]
    # eight structured calls, all issued concurrently: the fake saw all eight in flight at once
    calls = fake.requests
    assert len(calls) == 8 and fake.max_active == 8
    assert max(c.started_at for c in calls) < min(c.ended_at or 0.0 for c in calls)


async def test_failed_categories_leave_a_partial_character(
    live: Live, fake: FakeUpstream
) -> None:
    alice = await live.register()
    failing = ["world", "tasks", "abilities"]
    fake.faults.extend([Fault.http(400, match=f"Category: {c} ") for c in failing])
    r = await alice.request("POST", "/api/characters/generate", json={"name": "Half Done"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "partial"
    assert sorted(c for c, v in body["profile"].items() if v is None) == sorted(failing)
    assert len(fake.faults) == 0  # each failing category's call met its fault
    stored = await alice.request("GET", f"/api/characters/{body['id']}")
    assert stored.json()["profile"] == body["profile"]


async def test_generate_stream_and_partial(live: Live, fake) -> None:  # type: ignore[no-untyped-def]
    alice = await live.register()
    async with alice.stream(
        "/api/characters/generate", {"name": "Bad Luck [[fake:fault=http_400]]"}
    ) as sse:
        assert sse.response.status_code == 200
        events = await sse.collect()
    names = [n for n, _ in events]
    assert names[-1] == "error" and names.count("category") == 8
    assert all(d["status"] == "failed" for n, d in events if n == "category")
    r = await alice.request("GET", "/api/characters")
    assert r.json()["items"] == []

    async with alice.stream("/api/characters/generate", {"name": "Ok"}) as sse:
        events = await sse.collect()
    names = [n for n, _ in events]
    assert names.count("category") == 8 and names[-2:] == ["character", "done"]
    character = events[-2][1]
    assert character["status"] == "ready"

    r = await alice.request("POST", f"/api/characters/{character['id']}/generate/world")
    assert r.status_code == 200, r.text
    assert r.json()["profile"]["world"]
    r = await alice.request("POST", f"/api/characters/{character['id']}/generate/nonsense")
    assert r.status_code == 404
