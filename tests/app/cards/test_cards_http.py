"""Cards through HTTP on every backend: import (JSON, PNG; V2, V3), export, round trips,
bad cards leaving nothing behind, completion of empty categories, limits."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select

from storage.schema import avatars, characters
from tests.app.cards.samples import (
    CHINESE_V2,
    SILLYTAVERN_V2,
    V3_WITH_ASSETS,
    assert_book_kept,
    card_png,
    read_chunks,
    without_book,
    without_ours,
)
from tests.app.harness import SSE, Live, Session, live_server, make_settings
from tests.app.images import framed, noise_png, picture, pixels

PNG = {"Content-Type": "image/png"}


async def import_card(
    session: Session, body: bytes, *, json_body: bool = False, query: str = ""
) -> Any:
    headers = {"Content-Type": "application/json"} if json_body else PNG
    return await session.request(
        "POST", f"/api/characters/import{query}", content=body, headers=headers
    )


async def export(session: Session, cid: str, spec: str, fmt: str) -> Any:
    r = await session.request("GET", f"/api/characters/{cid}/card?spec={spec}&format={fmt}")
    assert r.status_code == 200, r.text
    return r


async def rows(live: Live) -> tuple[int, int]:
    """Characters and avatars stored, counted in the database itself."""

    def count(conn: Any) -> tuple[int, int]:
        return (
            conn.execute(select(func.count()).select_from(characters)).scalar_one(),
            conn.execute(select(func.count()).select_from(avatars)).scalar_one(),
        )

    return await live.services.db.read(count)  # type: ignore[no-any-return]


async def test_sillytavern_png_imports_and_exports_every_field(live: Live) -> None:
    alice = await live.register()
    r = await import_card(alice, card_png({"chara": SILLYTAVERN_V2}))
    assert r.status_code == 201, r.text
    character = r.json()
    assert character["name"] == "Seraphina" and character["status"] == "partial"
    assert character["greeting"] == SILLYTAVERN_V2["data"]["first_mes"]
    assert character["alternate_greetings"] == SILLYTAVERN_V2["data"]["alternate_greetings"]
    assert character["tags"] == ["fantasy", "elf", "healer"]
    assert character["profile"]["personality"] == {"traits": SILLYTAVERN_V2["data"]["personality"]}
    assert character["avatar_url"] is not None  # the card's picture, as a 256x256 avatar
    avatar = await live.client.get(character["avatar_url"])
    assert pixels(avatar.content) == ((256, 256), {(30, 90, 160, 255)})

    png = await export(alice, character["id"], "v2", "png")
    assert png.headers["content-type"] == "image/png"
    chunks = read_chunks(png.content)
    assert set(chunks) == {"chara"}
    book = SILLYTAVERN_V2["data"]["character_book"]
    assert without_ours(without_book(chunks["chara"])) == without_book(SILLYTAVERN_V2)
    assert_book_kept(book, chunks["chara"]["data"]["character_book"])
    as_json = await export(alice, character["id"], "v2", "json")
    assert without_ours(without_book(as_json.json())) == without_book(SILLYTAVERN_V2)
    assert_book_kept(book, as_json.json()["data"]["character_book"])


async def test_v3_json_with_assets_and_lorebook_round_trips(live: Live) -> None:
    alice = await live.register()
    r = await import_card(alice, json.dumps(V3_WITH_ASSETS).encode(), json_body=True)
    assert r.status_code == 201, r.text
    character = r.json()
    assert character["avatar_url"] is None
    book = V3_WITH_ASSETS["data"]["character_book"]
    exported = (await export(alice, character["id"], "v3", "json")).json()
    assert without_ours(without_book(exported)) == without_book(V3_WITH_ASSETS)
    assert_book_kept(book, exported["data"]["character_book"])

    # the card's book became a lorebook attached to the character
    r = await alice.request("GET", f"/api/characters/{character['id']}/lorebooks")
    (lorebook_id,) = r.json()["lorebook_ids"]
    lorebook = (await alice.request("GET", f"/api/lorebooks/{lorebook_id}")).json()
    assert lorebook["name"] == "Skies" and lorebook["scan_depth"] == 6
    assert lorebook["token_budget"] == 700 and lorebook["recursive"] is True
    assert [e["keys"] for e in lorebook["entries"]] == [["Gale", "ship"], ["/storm(s)?/i"]]
    assert [e["enabled"] for e in lorebook["entries"]] == [True, False]

    png = read_chunks((await export(alice, character["id"], "v3", "png")).content)
    assert set(png) == {"chara", "ccv3"}
    assert without_ours(without_book(png["ccv3"])) == without_book(V3_WITH_ASSETS)
    assert png["chara"]["spec"] == "chara_card_v2"
    assert_book_kept(book, png["chara"]["data"]["character_book"])

    # the lorebook as it is then: an edit shows in the next export; detached, no book
    first = lorebook["entries"][0]["id"]
    r = await alice.request(
        "PATCH", f"/api/lorebooks/{lorebook_id}/entries/{first}", json={"content": "Renamed."}
    )
    assert r.status_code == 200
    exported = (await export(alice, character["id"], "v3", "json")).json()
    assert exported["data"]["character_book"]["entries"][0]["content"] == "Renamed."
    r = await alice.request(
        "PUT", f"/api/characters/{character['id']}/lorebooks", json={"lorebook_ids": []}
    )
    exported = (await export(alice, character["id"], "v3", "json")).json()
    assert "character_book" not in exported["data"]


async def test_ccv3_wins_over_chara(live: Live) -> None:
    alice = await live.register()
    v2 = json.loads(json.dumps(SILLYTAVERN_V2))
    v2["data"]["name"] = "Backfilled"
    r = await import_card(alice, card_png({"chara": v2, "ccv3": V3_WITH_ASSETS}))
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "Captain Vex"


async def test_chinese_card_and_a_four_mib_png(live: Live) -> None:
    alice = await live.register()
    noise = Image.open(io.BytesIO(noise_png((1200, 1200))))
    body = card_png({"chara": CHINESE_V2}, picture=noise)
    assert 4 * 1024 * 1024 <= len(body) < 8 * 1024 * 1024
    r = await import_card(alice, body)
    assert r.status_code == 201, r.text
    character = r.json()
    assert character["name"] == "林黛玉"
    assert character["profile"]["world"] == {"setting": "大观园潇湘馆，暮春时节，落花满地。"}
    assert character["tags"] == ["红楼梦", "古典"]
    exported = (await export(alice, character["id"], "v2", "json")).json()
    assert without_ours(exported) == CHINESE_V2
    assert "林黛玉" in (await export(alice, character["id"], "v2", "json")).text  # not escaped


def _truncated() -> bytes:
    whole = card_png({"chara": CHINESE_V2})
    return whole[: len(whole) // 2]


@pytest.mark.parametrize(
    ("body", "json_body"),
    [
        (card_png({}, raw={"chara": "%%% not base64 %%%"}), False),
        (card_png({}, raw={"chara": base64.b64encode(b"{not json").decode()}), False),
        (card_png({"chara": {"spec": "chara_card_v1", "data": {"name": "x"}}}), False),
        (card_png({}, raw={"Comment": "made with GIMP"}), False),
        (picture((64, 64)), False),  # a PNG without any chunk
        (_truncated(), False),
        (b"\x89PNG\r\n\x1a\n", False),
        (b"", True),
        (b"{not json", True),
        (json.dumps({"spec": "chara_card_v3", "data": {"description": "no name"}}).encode(), True),
        (json.dumps({"name": "V1", "description": "no spec"}).encode(), True),
        (picture((64, 64), "JPEG"), False),
    ],
)
async def test_malformed_cards_are_invalid_card_with_nothing_stored(
    live: Live, body: bytes, json_body: bool
) -> None:
    alice = await live.register()
    r = await import_card(alice, body, json_body=json_body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_card"
    assert await rows(live) == (0, 0)
    r = await alice.request("GET", "/api/characters")
    assert r.json()["items"] == []


@pytest.mark.parametrize(("spec", "fmt"), [("v2", "png"), ("v3", "png"), ("v3", "json")])
async def test_fastnpc_card_reimported_is_the_same_character(
    live: Live, spec: str, fmt: str
) -> None:
    alice = await live.register()
    r = await alice.request(
        "POST",
        "/api/characters",
        json={
            "name": "Mira",
            "profile": {
                "identity": {"name": "Mira", "age": "31", "background": "docks"},
                "backstory": {"origin": "Port Sel", "experiences": ["a wreck"], "secret": "s"},
                "world": {"era": "iron", "custom_field": "kept too"},
            },
            "greeting": "Hm? {{user}}?",
            "alternate_greetings": ["Again?"],
            "tags": ["noir"],
            "sources": [{"provider": "wikipedia", "title": "Mira", "url": "https://w/m"}],
            "settings": {
                "model": "z-ai/glm-4-32b",
                "temperature": 0.3,
                "fallback_models": ["a/b"],
                "language": "en",
            },
        },
    )
    assert r.status_code == 201, r.text
    original = r.json()
    r = await alice.request(
        "PUT", f"/api/characters/{original['id']}/avatar", content=framed(500, 300, 60)
    )
    original = r.json()

    card = await export(alice, original["id"], spec, fmt)
    r = await import_card(alice, card.content, json_body=fmt == "json")
    assert r.status_code == 201, r.text
    copy = r.json()
    same = ("name", "status", "profile", "greeting", "alternate_greetings", "tags", "sources")
    for key in (*same, "settings"):
        assert copy[key] == original[key], key
    if fmt == "png":
        assert copy["avatar_url"] == original["avatar_url"]  # same bytes, same hash
        a = await live.client.get(original["avatar_url"])
        b = await live.client.get(copy["avatar_url"])
        assert a.content == b.content
    else:
        assert copy["avatar_url"] is None  # a JSON card carries no picture
    # and the copy exports the same card (dates included: a card's dates are kept)
    again = (await export(alice, copy["id"], spec, "json")).json()
    first = (await export(alice, original["id"], spec, "json")).json()
    if fmt == "json":
        first["data"]["extensions"]["fastnpc"]["has_avatar"] = False
    assert again == first


async def test_character_without_avatar_exports_a_plain_picture(live: Live) -> None:
    alice = await live.register()
    original = await alice.character("Plain")
    png = await export(alice, original["id"], "v3", "png")
    size, _ = pixels(png.content)
    assert size == (256, 256)
    r = await import_card(alice, png.content)
    assert r.status_code == 201, r.text
    assert r.json()["avatar_url"] is None  # the generated picture is not an avatar
    assert await rows(live) == (2, 0)


async def test_export_errors(live: Live) -> None:
    alice = await live.register()
    bob = await live.register("bob")
    character = await alice.character("Mira")
    r = await bob.request("GET", f"/api/characters/{character['id']}/card")
    assert r.status_code == 404
    for query in ("spec=v1", "format=gif", "spec=v2&extra=1"):
        r = await alice.request("GET", f"/api/characters/{character['id']}/card?{query}")
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request", query
    r = await alice.request("GET", f"/api/characters/{character['id']}/card")
    assert r.status_code == 200 and r.json()["spec"] == "chara_card_v3"  # the defaults
    r = await live.client.get(f"/api/characters/{character['id']}/card")
    assert r.status_code == 401


async def test_complete_generates_the_empty_categories(live: Live) -> None:
    alice = await live.register()
    body = json.dumps(CHINESE_V2).encode()
    r = await import_card(alice, body, json_body=True, query="?complete=true")
    assert r.status_code == 201, r.text
    character = r.json()
    assert character["status"] == "ready"
    assert character["profile"]["world"] == {"setting": "大观园潇湘馆，暮春时节，落花满地。"}
    assert all(character["profile"].values())

    headers = {**alice.headers, "Accept": "text/event-stream", **PNG}
    async with live.client.stream(
        "POST", "/api/characters/import?complete=true", content=card_png({"chara": CHINESE_V2}),
        headers=headers,
    ) as response:  # fmt: skip
        assert response.status_code == 200
        sse = SSE(response)
        try:
            events = await sse.collect()
        finally:
            await sse.aclose()
    names = [n for n, _ in events]
    # the card fills identity, personality, world, dialogue; the other four are generated
    assert sorted(d["category"] for n, d in events if n == "category") == sorted(
        ["backstory", "abilities", "tasks", "system"]
    )
    assert names[-2:] == ["character", "done"]
    assert events[-2][1]["status"] == "ready" and events[-2][1]["avatar_url"] is not None


async def test_import_over_the_upload_limit_is_413(db_url: str, fake: Any) -> None:
    async with live_server(make_settings(db_url, fake.base_url, max_upload_bytes=50_000)) as live:
        alice = await live.register()
        noise = Image.open(io.BytesIO(noise_png((200, 200))))
        r = await import_card(alice, card_png({"chara": CHINESE_V2}, picture=noise))
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
        assert await rows(live) == (0, 0)
