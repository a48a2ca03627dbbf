from __future__ import annotations

from tests.app.harness import Live


async def test_health_and_ready(live: Live) -> None:
    r = await live.client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = await live.client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ready"
    assert r.json()["checks"]["database"] == "ok"


async def test_register_login_me_logout(live: Live) -> None:
    alice = await live.register("alice", "password123")
    assert alice.user["username"] == "alice"
    assert alice.user["is_admin"] is False and alice.user["disabled"] is False
    assert alice.user["created_at"].endswith("Z")
    me = await alice.request("GET", "/api/me")
    assert me.status_code == 200 and me.json() == alice.user

    r = await live.client.post(
        "/api/auth/login", json={"username": "alice", "password": "password123"}
    )
    assert r.status_code == 200
    second = r.json()["token"]
    assert second != alice.token

    r = await alice.request("POST", "/api/auth/logout")
    assert r.status_code == 204
    r = await alice.request("GET", "/api/me")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    # the other token still works
    r = await live.client.get("/api/me", headers={"Authorization": f"Bearer {second}"})
    assert r.status_code == 200


async def test_register_errors(live: Live) -> None:
    await live.register("bob", "password123")
    r = await live.client.post("/api/auth/register", json={"username": "bob", "password": "x" * 9})
    assert r.status_code == 409 and r.json()["error"]["code"] == "username_taken"
    for body in (
        {"username": "b!", "password": "password123"},
        {"username": "bo", "password": "password123"},
        {"username": "carol", "password": "short"},
        {"username": "carol"},
    ):
        r = await live.client.post("/api/auth/register", json=body)
        assert r.status_code == 400, body
        assert r.json()["error"]["code"] == "invalid_request"
        assert r.json()["error"]["details"]
    r = await live.client.post(
        "/api/auth/register", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"


async def test_login_errors_are_indistinguishable(live: Live) -> None:
    await live.register("dave", "password123")
    wrong = await live.client.post(
        "/api/auth/login", json={"username": "dave", "password": "nopenope"}
    )
    unknown = await live.client.post(
        "/api/auth/login", json={"username": "nobody", "password": "nopenope"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"]["code"] == "invalid_credentials"


async def test_missing_or_bad_token(live: Live) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        r = await live.client.get("/api/characters", headers=headers)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthenticated"


async def test_errors_are_json(live: Live) -> None:
    r = await live.client.get("/no/such/path")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await live.client.delete("/healthz")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    big = "x" * (300 * 1024)
    r = await live.client.post("/api/auth/register", json={"username": "eve", "password": big})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


async def test_openapi_and_metrics(live: Live) -> None:
    r = await live.client.get("/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    assert "/api/auth/register" in paths and "/api/characters/{character_id}/chat" in paths
    r = await live.client.get("/metrics")
    assert r.status_code == 200 and "text/plain" in r.headers["content-type"]


async def test_usernames_are_unique_case_insensitively(live: Live) -> None:
    await live.register("RootAdmin", "password123")
    for other in ("rootadmin", "ROOTADMIN"):
        r = await live.client.post(
            "/api/auth/register", json={"username": other, "password": "password456"}
        )
        assert r.status_code == 409 and r.json()["error"]["code"] == "username_taken"
    r = await live.client.post(
        "/api/auth/login", json={"username": "rootADMIN", "password": "password123"}
    )
    assert r.status_code == 200 and r.json()["user"]["username"] == "RootAdmin"
