"""Lorebooks over HTTP on both backends: CRUD, entries, attachments, import/export, match."""

from __future__ import annotations

import json
from typing import Any

from tests.app.harness import Live, Session

BOOK = {
    "name": "Eldoria",
    "description": "Places of Eldoria",
    "scan_depth": 3,
    "token_budget": 300,
    "recursive": True,
    "entries": [
        {"keys": ["glade"], "content": "The glade is warded.", "comment": "glade"},
        {
            "keys": ["/sto+rm/i"],
            "use_regex": True,
            "content": "Storms here are alive.",
            "position": "after_char",
            "priority": 3,
            "insertion_order": 5,
        },
    ],
}

ENTRY_DEFAULTS = {
    "secondary_keys": [],
    "selective": False,
    "constant": False,
    "enabled": True,
    "case_sensitive": False,
    "use_regex": False,
    "insertion_order": 100,
    "priority": 10,
    "position": "before_char",
    "comment": "",
}


async def create(session: Session, body: dict[str, Any] | None = None) -> dict[str, Any]:
    r = await session.request("POST", "/api/lorebooks", json=body or BOOK)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_crud_and_entries(live: Live) -> None:
    alice = await live.register()
    book = await create(alice)
    assert book["name"] == "Eldoria" and book["scan_depth"] == 3 and book["recursive"] is True
    glade, storm = book["entries"]
    assert glade == {"id": glade["id"], "keys": ["glade"], "content": "The glade is warded."} | {
        **ENTRY_DEFAULTS,
        "comment": "glade",
    }
    assert storm["use_regex"] is True and storm["position"] == "after_char"

    minimal = await create(alice, {"name": "Empty"})
    assert minimal["scan_depth"] == 4 and minimal["token_budget"] == 512
    assert minimal["recursive"] is False and minimal["entries"] == []
    assert minimal["description"] == ""

    r = await alice.request("GET", "/api/lorebooks")
    assert [b["id"] for b in r.json()["items"]] == [book["id"], minimal["id"]]

    r = await alice.request(
        "PATCH", f"/api/lorebooks/{book['id']}", json={"name": "Eldoria II", "scan_depth": 9}
    )
    assert r.status_code == 200 and r.json()["name"] == "Eldoria II"
    assert r.json()["scan_depth"] == 9 and r.json()["token_budget"] == 300
    assert r.json()["updated_at"] >= book["updated_at"]

    r = await alice.request(
        "POST", f"/api/lorebooks/{book['id']}/entries", json={"keys": ["king"], "content": "K"}
    )
    assert r.status_code == 201
    king = r.json()
    assert king == {"id": king["id"], "keys": ["king"], "content": "K"} | ENTRY_DEFAULTS
    r = await alice.request(
        "PATCH",
        f"/api/lorebooks/{book['id']}/entries/{king['id']}",
        json={"selective": True, "secondary_keys": ["crown"], "enabled": False},
    )
    assert r.status_code == 200
    assert r.json() == king | {"selective": True, "secondary_keys": ["crown"], "enabled": False}
    r = await alice.request("DELETE", f"/api/lorebooks/{book['id']}/entries/{glade['id']}")
    assert r.status_code == 204
    r = await alice.request("DELETE", f"/api/lorebooks/{book['id']}/entries/{glade['id']}")
    assert r.status_code == 404
    r = await alice.request("GET", f"/api/lorebooks/{book['id']}")
    assert [e["id"] for e in r.json()["entries"]] == [storm["id"], king["id"]]

    r = await alice.request("DELETE", f"/api/lorebooks/{book['id']}")
    assert r.status_code == 204
    for method, path in (
        ("GET", f"/api/lorebooks/{book['id']}"),
        ("DELETE", f"/api/lorebooks/{book['id']}"),
        ("PATCH", f"/api/lorebooks/{book['id']}/entries/{king['id']}"),
    ):
        r = await alice.request(method, path, json={} if method == "PATCH" else None)
        assert r.status_code == 404, (method, path)


async def test_validation_is_strict(live: Live) -> None:
    alice = await live.register()
    book = await create(alice)
    bad_books: list[dict[str, Any]] = [
        {},
        {"name": ""},
        {"name": "x", "scan_depth": 0},
        {"name": "x", "scan_depth": 101},
        {"name": "x", "scan_depth": "4"},
        {"name": "x", "recursive": 1},
        {"name": "x", "entries": [{"keys": "dragon"}]},
        {"name": "x", "entries": [{"position": "middle"}]},
        {"name": "x", "entries": [{"priority": True}]},
        {"name": "x", "unknown": 1},
    ]
    for body in bad_books:
        r = await alice.request("POST", "/api/lorebooks", json=body)
        assert r.status_code == 400, body
        assert r.json()["error"]["code"] == "invalid_request"
    r = await alice.request(
        "POST", f"/api/lorebooks/{book['id']}/entries", json={"insertion_order": "1"}
    )
    assert r.status_code == 400
    r = await alice.request("GET", "/api/lorebooks/0" + book["id"])
    assert r.status_code == 404


async def test_another_users_lorebooks_are_invisible(live: Live) -> None:
    alice, bob = await live.register("alice"), await live.register("bob")
    book = await create(alice)
    entry_id = book["entries"][0]["id"]
    for method, path, body in (
        ("GET", f"/api/lorebooks/{book['id']}", None),
        ("PATCH", f"/api/lorebooks/{book['id']}", {"name": "mine"}),
        ("DELETE", f"/api/lorebooks/{book['id']}", None),
        ("GET", f"/api/lorebooks/{book['id']}/export", None),
        ("POST", f"/api/lorebooks/{book['id']}/match", {"text": "glade"}),
        ("POST", f"/api/lorebooks/{book['id']}/entries", {"keys": ["x"]}),
        ("PATCH", f"/api/lorebooks/{book['id']}/entries/{entry_id}", {"content": "x"}),
        ("DELETE", f"/api/lorebooks/{book['id']}/entries/{entry_id}", None),
    ):
        r = await bob.request(method, path, json=body)
        assert r.status_code == 404, (method, path)
    assert (await bob.request("GET", "/api/lorebooks")).json() == {"items": []}
    mira = await bob.character("Mira")
    r = await bob.request(
        "PUT", f"/api/characters/{mira['id']}/lorebooks", json={"lorebook_ids": [book["id"]]}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    r = await alice.request(
        "PUT", f"/api/characters/{mira['id']}/lorebooks", json={"lorebook_ids": [book["id"]]}
    )
    assert r.status_code == 404
    r = await alice.request("GET", f"/api/lorebooks/{book['id']}")
    assert r.json() == book


async def test_attachments_are_ordered_and_checked(live: Live) -> None:
    alice = await live.register()
    first, second = await create(alice), await create(alice, {"name": "Second"})
    mira, tom = await alice.character("Mira"), await alice.character("Tom")
    path = f"/api/characters/{mira['id']}/lorebooks"
    ids = [second["id"], first["id"]]
    r = await alice.request("PUT", path, json={"lorebook_ids": ids})
    assert r.status_code == 200 and r.json() == {"lorebook_ids": ids}
    assert (await alice.request("GET", path)).json() == {"lorebook_ids": ids}
    for bad in ([first["id"], first["id"]], ["nope"], ["999999"], [int(first["id"])]):
        r = await alice.request("PUT", path, json={"lorebook_ids": bad})
        assert r.status_code == 400, bad
    assert (await alice.request("GET", path)).json() == {"lorebook_ids": ids}

    r = await alice.request(
        "POST", "/api/groups", json={"name": "Inn", "character_ids": [mira["id"], tom["id"]]}
    )
    group = r.json()
    gpath = f"/api/groups/{group['id']}/lorebooks"
    r = await alice.request("PUT", gpath, json={"lorebook_ids": [first["id"]]})
    assert r.status_code == 200 and r.json() == {"lorebook_ids": [first["id"]]}
    r = await alice.request("PUT", "/api/groups/999999/lorebooks", json={"lorebook_ids": []})
    assert r.status_code == 404

    # deleting a lorebook detaches it everywhere
    assert (await alice.request("DELETE", f"/api/lorebooks/{first['id']}")).status_code == 204
    assert (await alice.request("GET", path)).json() == {"lorebook_ids": [second["id"]]}
    assert (await alice.request("GET", gpath)).json() == {"lorebook_ids": []}
    r = await alice.request("PUT", path, json={"lorebook_ids": []})
    assert r.json() == {"lorebook_ids": []}


async def test_match_reports_entries_before_the_budget(live: Live) -> None:
    alice = await live.register()
    book = await create(
        alice,
        {
            "name": "m",
            "token_budget": 1,
            "recursive": True,
            "entries": [
                {"keys": ["glade"], "content": "the storm", "insertion_order": 2},
                {"keys": ["/sto+rm/i"], "use_regex": True, "content": "x", "insertion_order": 1},
                {"keys": ["(a+)+$"], "use_regex": True, "content": "evil"},
                {"keys": ["["], "use_regex": True, "content": "invalid"},
                {"keys": ["glade"], "enabled": False},
                {"constant": True, "content": "always", "insertion_order": 3},
            ],
        },
    )
    ids = [e["id"] for e in book["entries"]]
    path = f"/api/lorebooks/{book['id']}/match"
    r = await alice.request("POST", path, json={"text": "the GLADE " + "a" * 3000 + "b"})
    assert r.status_code == 200
    assert r.json() == {"entry_ids": [ids[1], ids[0], ids[5]]}
    r = await alice.request("POST", path, json={"text": "nothing"})
    assert r.json() == {"entry_ids": [ids[5]]}


V3_LOREBOOK: dict[str, Any] = {
    "spec": "lorebook_v3",
    "data": {
        "name": "Skies",
        "description": "Places and people of the skies",
        "scan_depth": 6,
        "token_budget": 700,
        "recursive_scanning": True,
        "extensions": {"risu_fullWordMatching": True},
        "entries": [
            {
                "keys": ["Gale", "ship"],
                "content": "The Gale is a three-masted airship.",
                "extensions": {"x": 1},
                "enabled": True,
                "insertion_order": 10,
                "case_sensitive": True,
                "use_regex": False,
                "constant": False,
                "name": "the ship",
                "priority": 5,
                "id": "e1",
                "selective": True,
                "secondary_keys": ["sail"],
                "position": "after_char",
            },
            {
                "keys": ["/storm(s)?/i"],
                "content": "Storms here are alive.",
                "extensions": {},
                "enabled": False,
                "insertion_order": 20,
                "use_regex": True,
            },
        ],
    },
}

SILLYTAVERN_WORLD = {
    "entries": {
        "1": {
            "uid": 1,
            "key": ["长安", "Chang'an"],
            "keysecondary": [],
            "comment": "the capital",
            "content": "长安是唐朝的都城。",
            "constant": False,
            "selective": True,
            "selectiveLogic": 0,
            "order": 100,
            "position": 1,
            "disable": False,
            "excludeRecursion": False,
            "probability": 100,
            "useProbability": True,
            "depth": 4,
            "caseSensitive": None,
            "group": "",
        },
        "0": {
            "uid": 0,
            "key": ["/洛阳|luoyang/i", "东都"],
            "keysecondary": [],
            "comment": "",
            "content": "洛阳是东都。",
            "constant": True,
            "selective": False,
            "order": 50,
            "position": 0,
            "disable": True,
        },
    }
}


async def test_import_v3_wrapped_and_unwrapped_and_export(live: Live) -> None:
    alice = await live.register()
    r = await alice.request("POST", "/api/lorebooks/import", content=json.dumps(V3_LOREBOOK))
    assert r.status_code == 201, r.text
    book = r.json()
    assert book["name"] == "Skies" and book["scan_depth"] == 6 and book["token_budget"] == 700
    assert book["recursive"] is True
    ship, storm = book["entries"]
    assert ship["keys"] == ["Gale", "ship"] and ship["case_sensitive"] is True
    assert ship["selective"] and ship["secondary_keys"] == ["sail"]
    assert ship["position"] == "after_char" and ship["priority"] == 5
    assert storm["use_regex"] is True and storm["enabled"] is False

    r = await alice.request("GET", f"/api/lorebooks/{book['id']}/export")
    exported = r.json()
    assert exported["spec"] == "lorebook_v3"
    data = exported["data"]
    assert data["extensions"] == {"risu_fullWordMatching": True}
    original = V3_LOREBOOK["data"]["entries"][0]
    assert data["entries"][0] == original | {"comment": ""}
    assert data["entries"][1]["keys"] == ["/storm(s)?/i"]
    # an export imports back to the same lorebook
    r = await alice.request("POST", "/api/lorebooks/import", content=r.content)
    again = r.json()
    assert [{k: v for k, v in e.items() if k != "id"} for e in again["entries"]] == [
        {k: v for k, v in e.items() if k != "id"} for e in book["entries"]
    ]
    r = await alice.request("GET", f"/api/lorebooks/{again['id']}/export")
    assert r.json()["data"] == data

    r = await alice.request(
        "POST", "/api/lorebooks/import", content=json.dumps(V3_LOREBOOK["data"])
    )
    assert r.status_code == 201 and r.json()["entries"][0]["keys"] == ["Gale", "ship"]


async def test_import_v2_character_book_and_sillytavern_world_info(live: Live) -> None:
    alice = await live.register()
    v2_book = {
        "entries": [
            {"keys": ["glade", "/wood(s)?/"], "content": "Warded.", "insertion_order": 1},
            {"keys": ["elf"], "content": "Elves.", "enabled": True},
        ],
        "extensions": {},
    }
    r = await alice.request("POST", "/api/lorebooks/import", content=json.dumps(v2_book))
    assert r.status_code == 201, r.text
    book = r.json()
    assert book["name"] == "Imported lorebook"
    glade, elf = book["entries"]
    assert glade["use_regex"] is True and glade["keys"] == ["glade", "/wood(s)?/"]
    assert elf["use_regex"] is False
    r = await alice.request(
        "POST", f"/api/lorebooks/{book['id']}/match", json={"text": "deep woods"}
    )
    assert r.json() == {"entry_ids": [glade["id"]]}

    r = await alice.request("POST", "/api/lorebooks/import", content=json.dumps(SILLYTAVERN_WORLD))
    assert r.status_code == 201, r.text
    world = r.json()
    luoyang, changan = world["entries"]  # by uid
    assert luoyang["use_regex"] is True and luoyang["keys"] == ["/洛阳|luoyang/i", "东都"]
    assert luoyang["constant"] is True and luoyang["enabled"] is False
    assert luoyang["insertion_order"] == 50 and luoyang["position"] == "before_char"
    assert changan["keys"] == ["长安", "Chang'an"] and changan["position"] == "after_char"
    assert changan["comment"] == "the capital" and changan["selective"] is True
    r = await alice.request(
        "POST", f"/api/lorebooks/{world['id']}/match", json={"text": "我想去长安和东都"}
    )
    assert r.json() == {"entry_ids": [changan["id"]]}
    r = await alice.request("GET", f"/api/lorebooks/{world['id']}/export")
    exported = r.json()["data"]["entries"][1]
    assert (
        exported["extensions"]["probability"] == 100 and exported["content"] == "长安是唐朝的都城。"
    )


async def test_import_rejects_what_is_not_a_lorebook(live: Live) -> None:
    alice = await live.register()
    for body in (
        b"not json",
        b"[]",
        b'{"spec": "chara_card_v3", "data": {"entries": []}}',
        b'{"name": "x"}',
        b'{"entries": [{"keys": "glade"}]}',
        b'{"entries": [{"content": 5}]}',
        b'{"entries": {"0": {"key": [1]}}}',
        json.dumps({"entries": [{"content": "x" * 20_001}]}).encode(),
    ):
        r = await alice.request("POST", "/api/lorebooks/import", content=body)
        assert r.status_code == 400, body[:60]
        assert r.json()["error"]["code"] == "invalid_request"
    assert (await alice.request("GET", "/api/lorebooks")).json() == {"items": []}
