"""card_mapping and card_png as pure functions: the field mapping, round trips, bad cards."""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from app.errors import InvalidCard
from app.services.card_mapping import (
    V3_BACKFILL_NOTE,
    CardError,
    read_card,
    render_text,
    v2_backfill,
    write_card,
)
from app.services.card_png import decode_chunk, encode_chunk
from app.services.cards import ValidCard, parse_upload
from app.services.lore_formats import lorebook_data
from storage.characters import CATEGORIES
from storage.lorebooks import NewLorebook
from storage.records import Character, CharacterSettings, Lorebook, LoreEntry, Source
from tests.app.cards.samples import (
    CHINESE_V2,
    SILLYTAVERN_V2,
    V3_WITH_ASSETS,
    assert_book_kept,
    without_book,
    without_ours,
)

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def stored(card: ValidCard) -> Character:
    """What the database would hold for an imported card."""
    return Character(
        id=1,
        user_id=1,
        name=card.name,
        status="partial",
        profile=card.profile,
        source_text=card.source_text,
        created_at=T0,
        updated_at=T0,
        greeting=card.extras.greeting,
        alternate_greetings=list(card.extras.alternate_greetings),
        tags=list(card.extras.tags),
        sources=list(card.extras.sources),
        settings=card.extras.settings,
        card_extra=card.extras.card_extra,
    )


def stored_book(book: NewLorebook) -> Lorebook:
    """What the database would hold for an imported lorebook."""
    return Lorebook(
        id=1,
        user_id=1,
        name=book.name,
        description=book.description,
        scan_depth=book.scan_depth,
        token_budget=book.token_budget,
        recursive=book.recursive,
        entries=[
            LoreEntry(
                id=i + 1,
                lorebook_id=1,
                keys=list(e.keys),
                secondary_keys=list(e.secondary_keys),
                selective=e.selective,
                constant=e.constant,
                enabled=e.enabled,
                case_sensitive=e.case_sensitive,
                use_regex=e.use_regex,
                content=e.content,
                insertion_order=e.insertion_order,
                priority=e.priority,
                position=e.position,
                comment=e.comment,
                extra=None if e.extra is None else dict(e.extra),
            )
            for i, e in enumerate(book.entries)
        ],
        created_at=T0,
        updated_at=T0,
        extra=None if book.extra is None else dict(book.extra),
    )


def imported(card: dict[str, Any]) -> Character:
    return stored(parse_upload(json.dumps(card).encode()))


@pytest.mark.parametrize(
    ("field", "value", "category", "home"),
    [
        ("description", "tall and quiet", "identity", "background"),
        ("personality", "stubborn", "personality", "traits"),
        ("scenario", "a rainy port", "world", "setting"),
        ("system_prompt", "stay in character", "system", "role_rules"),
        ("mes_example", "<START>\n{{char}}: hm.", "dialogue", "examples"),
        ("post_history_instructions", "be brief", "system", "post_history_instructions"),
    ],
)
def test_each_card_text_has_one_home_in_the_profile(
    field: str, value: str, category: str, home: str
) -> None:
    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Ann", field: value}}
    character = imported(card)
    filled = {c for c in CATEGORIES if character.profile[c] is not None}
    assert filled == {category}
    entry = character.profile[category]
    assert entry is not None and entry[home] == value
    exported = write_card(character, "v2")["data"]
    assert exported[field] == value
    assert all(exported[other] == "" for other in ("description", "scenario") if other != field)


def test_greetings_tags_and_name() -> None:
    character = imported(SILLYTAVERN_V2)
    assert character.name == "Seraphina"
    assert character.greeting == SILLYTAVERN_V2["data"]["first_mes"]
    assert character.alternate_greetings == SILLYTAVERN_V2["data"]["alternate_greetings"]
    assert character.tags == ["fantasy", "elf", "healer"]
    assert character.profile["identity"] == {
        "name": "Seraphina",
        "background": SILLYTAVERN_V2["data"]["description"],
    }
    empty = imported({"spec": "chara_card_v2", "data": {"name": "E", "first_mes": ""}})
    assert empty.greeting is None and all(v is None for v in empty.profile.values())
    assert write_card(empty, "v2")["data"]["first_mes"] == ""


@pytest.mark.parametrize("card", [SILLYTAVERN_V2, V3_WITH_ASSETS, CHINESE_V2])
def test_round_trip_same_spec_keeps_every_field(card: dict[str, Any]) -> None:
    spec = "v3" if card["spec"] == "chara_card_v3" else "v2"
    valid = parse_upload(json.dumps(card).encode())
    book = None if valid.lorebook is None else lorebook_data(stored_book(valid.lorebook))
    exported = write_card(stored(valid), spec, book)
    assert without_ours(without_book(exported)) == without_book(card)
    assert ("character_book" in exported) == ("character_book" in card)
    if "character_book" in card["data"]:
        assert_book_kept(card["data"]["character_book"], exported["data"]["character_book"])
    assert "character_book" not in (valid.extras.card_extra or {}).get("data", {})
    assert list(exported["data"]["extensions"]) == [*card["data"]["extensions"], "fastnpc"]


def test_v2_to_v3_adds_required_fields_and_v3_to_v2_keeps_v3_fields() -> None:
    as_v3 = write_card(imported(SILLYTAVERN_V2), "v3")
    assert as_v3["spec"] == "chara_card_v3" and as_v3["spec_version"] == "3.0"
    assert as_v3["data"]["group_only_greetings"] == []
    assert "character_book" not in as_v3["data"]  # a lorebook now: exported when attached
    as_v2 = write_card(imported(V3_WITH_ASSETS), "v2")
    assert as_v2["spec"] == "chara_card_v2" and as_v2["spec_version"] == "2.0"
    for key in ("assets", "nickname", "source", "group_only_greetings", "x_future_field"):
        assert as_v2["data"][key] == V3_WITH_ASSETS["data"][key]


def test_native_character_renders_its_profile_into_card_texts() -> None:
    profile: dict[str, dict[str, Any] | None] = dict.fromkeys(CATEGORIES)
    profile["identity"] = {"name": "Mira", "age": "31", "background": "Grew up on the docks."}
    profile["backstory"] = {"origin": "Port Sel", "experiences": ["a wreck", "a trial"]}
    profile["personality"] = {"traits": "wry"}
    profile["dialogue"] = {"tone": "dry"}
    profile["tasks"] = {"goal": "pay off a debt"}
    assert render_text(profile, "description") == (
        "Grew up on the docks.\nAge: 31\nOrigin: Port Sel\nExperiences: a wreck; a trial"
    )
    assert render_text(profile, "personality") == "wry\nTone: dry"
    assert render_text(profile, "scenario") == "Goal: pay off a debt"
    assert render_text(profile, "system_prompt") == ""
    character = Character(
        1, 1, "Mira", "partial", profile, None, T0, T0,
        greeting="Hm?",
        sources=[Source("wikipedia", "Mira", "https://w/x")],
        settings=CharacterSettings(model="m/x", temperature=0.5, language="en"),
    )  # fmt: skip
    v3 = write_card(character, "v3")
    assert v3["data"]["creation_date"] == int(T0.timestamp())
    assert v3["data"]["source"] == ["https://w/x"]
    assert v3["data"]["group_only_greetings"] == [] and v3["data"]["first_mes"] == "Hm?"
    ours = v3["data"]["extensions"]["fastnpc"]
    assert ours["profile"] == profile and ours["has_avatar"] is False
    assert ours["settings"] == {
        "model": "m/x",
        "temperature": 0.5,
        "fallback_models": [],
        "language": "en",
    }
    # and the extension restores the character exactly
    back = imported(v3)
    assert back.profile == profile and back.settings == character.settings
    assert back.sources == character.sources and back.greeting == "Hm?"


def test_v2_backfill_carries_the_v3_note() -> None:
    card = v2_backfill(imported(V3_WITH_ASSETS))
    assert card["spec"] == "chara_card_v2"
    assert card["data"]["creator_notes"].startswith(V3_BACKFILL_NOTE)
    assert card["data"]["creator_notes"].endswith("Multilingual notes inside.")


def _with(data: dict[str, Any]) -> dict[str, Any]:
    card = copy.deepcopy(CHINESE_V2)
    card["data"].update(data)
    return card


@pytest.mark.parametrize(
    "card",
    [
        [],
        "a string",
        {"spec": "chara_card_v1", "data": {"name": "x"}},
        {"name": "V1 card", "description": "no spec"},
        {"spec": "chara_card_v2"},
        {"spec": "chara_card_v2", "data": []},
        _with({"name": ""}),
        _with({"name": 3}),
        _with({"description": ["not", "text"]}),
        _with({"tags": "a,b"}),
        _with({"alternate_greetings": [1]}),
        _with({"extensions": []}),
        _with({"character_book": "book"}),
        _with({"extensions": {"fastnpc": "x"}}),
        _with({"extensions": {"fastnpc": {"profile": []}}}),
        _with({"extensions": {"fastnpc": {"profile": {"bogus": {}}}}}),
        _with({"extensions": {"fastnpc": {"profile": {}, "settings": {"temperature": 9}}}}),
        _with({"extensions": {"fastnpc": {"profile": {}, "sources": [{"url": 1}]}}}),
    ],
)
def test_not_a_card(card: Any) -> None:
    with pytest.raises(InvalidCard) as caught:
        parse_upload(json.dumps(card).encode())
    assert caught.value.code == "invalid_card"


@pytest.mark.parametrize("body", [b"", b"{", b"\xff\xfe", b"null", "{}".encode("utf-16")])
def test_not_json(body: bytes) -> None:
    with pytest.raises(InvalidCard):
        parse_upload(body)


def test_chunk_encoding() -> None:
    assert decode_chunk(encode_chunk(CHINESE_V2)) == CHINESE_V2
    wrapped = base64.encodebytes(json.dumps(CHINESE_V2).encode()).decode()  # with newlines
    assert decode_chunk(wrapped) == CHINESE_V2
    for bad in ("not base64!", base64.b64encode(b"{bad json").decode(), "QQ="):
        with pytest.raises(CardError):
            decode_chunk(bad)
    with pytest.raises(CardError):
        read_card({"spec": "chara_card_v2", "data": {"name": "x", "extensions": 1}})


def test_a_malformed_character_book_is_an_invalid_card() -> None:
    for book in ({"entries": "x"}, {"entries": [{"keys": "glade"}]}, {"entries": [5]}):
        card = {"spec": "chara_card_v2", "data": {"name": "Ann", "character_book": book}}
        with pytest.raises(InvalidCard):
            parse_upload(json.dumps(card).encode())
    card = {"spec": "chara_card_v2", "data": {"name": "Ann", "character_book": {"entries": []}}}
    book = parse_upload(json.dumps(card).encode()).lorebook
    assert book is not None and book.name == "Ann" and list(book.entries) == []
