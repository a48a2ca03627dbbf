"""Avatars: upload, normalisation, public immutable serving, deletion, limits, bad images."""

from __future__ import annotations

import pytest

from app.services.images import normalise_avatar
from tests.app.harness import Live, live_server, make_settings
from tests.app.images import bomb_png, framed, noise_png, picture, pixels

RED = (255, 0, 0, 255)


async def test_upload_centre_crops_to_256_and_is_served_publicly(live: Live) -> None:
    alice = await live.register()
    character = await alice.character("Mira")
    r = await alice.request(
        "PUT",
        f"/api/characters/{character['id']}/avatar",
        content=framed(600, 300, 100),
        headers={"Content-Type": "image/png"},
    )
    assert r.status_code == 200, r.text
    url = r.json()["avatar_url"]
    assert url is not None and url.startswith("/media/avatars/") and url.endswith(".png")
    assert r.json()["updated_at"] >= character["updated_at"]

    served = await live.client.get(url)  # no Authorization header
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/png"
    assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert pixels(served.content) == ((256, 256), {RED})  # the blue bands were cropped off

    r = await alice.request("GET", f"/api/characters/{character['id']}")
    assert r.json()["avatar_url"] == url


@pytest.mark.parametrize(("fmt", "content_type"), [("JPEG", "image/jpeg"), ("WEBP", "image/webp")])
async def test_jpeg_and_webp_become_png(live: Live, fmt: str, content_type: str) -> None:
    alice = await live.register()
    character = await alice.character("Mira")
    r = await alice.request(
        "PUT",
        f"/api/characters/{character['id']}/avatar",
        content=picture((100, 400), fmt, "white"),
        headers={"Content-Type": content_type},
    )
    assert r.status_code == 200, r.text
    served = await live.client.get(r.json()["avatar_url"])
    size, colours = pixels(served.content)
    assert size == (256, 256) and served.content.startswith(b"\x89PNG")
    assert all(min(c[:3]) >= 250 for c in colours)  # white (JPEG may be off by a little)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not an image at all",
        picture((10, 10), "GIF"),
        picture((10, 10), "BMP"),
        picture((64, 64))[:60],  # truncated PNG
        bomb_png(8000, 5001),  # 40.008 megapixels: just over the limit
        bomb_png(30000, 30000),  # beyond Pillow's own bomb threshold
    ],
)
async def test_not_an_image_or_too_many_pixels_is_invalid_image(live: Live, body: bytes) -> None:
    alice = await live.register()
    character = await alice.character("Mira")
    r = await alice.request(
        "PUT",
        f"/api/characters/{character['id']}/avatar",
        content=body,
        headers={"Content-Type": "image/png"},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_image", r.text
    r = await alice.request("GET", f"/api/characters/{character['id']}")
    assert r.json()["avatar_url"] is None


async def test_delete_avatar_and_shared_pictures(live: Live) -> None:
    alice = await live.register()
    one = await alice.character("One")
    two = await alice.character("Two")
    urls = []
    for character in (one, two):
        r = await alice.request(
            "PUT", f"/api/characters/{character['id']}/avatar", content=picture((300, 300))
        )
        assert r.status_code == 200, r.text
        urls.append(r.json()["avatar_url"])
    assert urls[0] == urls[1]  # same picture, one stored copy

    r = await alice.request("DELETE", f"/api/characters/{one['id']}/avatar")
    assert r.status_code == 200 and r.json()["avatar_url"] is None
    assert (await live.client.get(urls[0])).status_code == 200  # Two still shows it
    r = await alice.request("DELETE", f"/api/characters/{two['id']}")
    assert r.status_code == 204
    gone = await live.client.get(urls[0])
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


async def test_other_users_and_bad_media_names(live: Live) -> None:
    alice = await live.register()
    bob = await live.register("bob")
    character = await alice.character("Mira")
    r = await bob.request("PUT", f"/api/characters/{character['id']}/avatar", content=b"x")
    assert r.status_code == 404
    r = await bob.request("DELETE", f"/api/characters/{character['id']}/avatar")
    assert r.status_code == 404
    r = await live.client.put(f"/api/characters/{character['id']}/avatar", content=b"x")
    assert r.status_code == 401
    for name in ("abc.png", "0" * 64 + ".jpg", "0" * 64, "0" * 64 + ".png", "A" * 64 + ".png"):
        r = await live.client.get(f"/media/avatars/{name}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", name


async def test_upload_limit_applies_to_uploads_and_body_limit_to_json(live: Live) -> None:
    alice = await live.register()
    character = await alice.character("Mira")
    big = noise_png((300, 300))
    assert 262_144 < len(big) < 8 * 1024 * 1024
    r = await alice.request("PUT", f"/api/characters/{character['id']}/avatar", content=big)
    assert r.status_code == 200, r.text
    r = await alice.request(
        "PATCH",
        f"/api/characters/{character['id']}",
        content=b'{"name": "' + b"x" * 300_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


async def test_upload_over_the_upload_limit_is_413(db_url: str, fake: object) -> None:
    settings = make_settings(db_url, fake.base_url, max_upload_bytes=100_000)  # type: ignore[attr-defined]
    async with live_server(settings) as live:
        alice = await live.register()
        character = await alice.character("Mira")
        big = noise_png((200, 200))
        assert len(big) > 100_000

        async def chunks() -> object:
            yield big  # no Content-Length: chunked transfer, limit checked while reading

        for kwargs in ({"content": big}, {"content": chunks()}):
            r = await alice.request("PUT", f"/api/characters/{character['id']}/avatar", **kwargs)
            assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
        r = await alice.request("GET", f"/api/characters/{character['id']}")
        assert r.json()["avatar_url"] is None


def test_normalising_a_normalised_avatar_changes_no_byte() -> None:
    once = normalise_avatar(framed(640, 480, 10))
    assert normalise_avatar(once) == once
