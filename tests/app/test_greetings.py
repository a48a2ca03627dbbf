"""Greeting texts, macros and the language choice (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.services.greetings import character_language, expand_macros, opening_messages
from app.services.personas import display_name
from storage.records import Character, CharacterSettings, Persona

T0 = datetime(2026, 11, 30, tzinfo=UTC)


def character(name: str = "Mira", **kwargs: object) -> Character:
    profile = kwargs.pop("profile", {})
    return Character(1, 1, name, "partial", profile, None, T0, T0, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hi {{user}}, I am {{char}}.", "Hi Bao, I am Mira."),
        ("{{USER}} {{Char}} {{cHaR}}", "Bao Mira Mira"),
        ("{{user}}{{user}}", "BaoBao"),
        ("{{ user }} {user} {{users}} {{original}}", "{{ user }} {user} {{users}} {{original}}"),
        ("你好，{{user}}。我是{{char}}。", "你好，Bao。我是Mira。"),
        ("", ""),
    ],
)
def test_expand_macros(text: str, expected: str) -> None:
    assert expand_macros(text, char="Mira", user="Bao") == expected


def test_names_with_backslashes_are_literal() -> None:
    assert expand_macros("{{user}}", char="x", user=r"a\1b\g<0>") == r"a\1b\g<0>"


def test_opening_messages() -> None:
    assert opening_messages(character(), user="Bao") == []
    assert opening_messages(character(alternate_greetings=["x"]), user="Bao") == []
    both = character(greeting="Hi {{user}}", alternate_greetings=["Yo {{char}}", ""])
    assert opening_messages(both, user="Bao") == ["Hi Bao", "Yo Mira"]


def test_display_name() -> None:
    assert display_name(Persona(), "bao") == "bao"
    assert display_name(Persona("宝玉", ""), "bao") == "宝玉"


def test_character_language() -> None:
    assert character_language(character()) == "en"
    assert character_language(character("林黛玉")) == "zh"
    assert character_language(character(profile={"world": {"era": "清朝"}})) == "zh"
    assert character_language(character(greeting="你好")) == "zh"
    chosen = character("林黛玉", settings=CharacterSettings(language="en"))
    assert character_language(chosen) == "en"
