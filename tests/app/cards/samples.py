"""Real-world-shaped Character Cards: a SillyTavern V2 export, a V3 card with assets and a
lorebook, a Chinese card; and helpers to build card PNGs the way other apps do."""

from __future__ import annotations

import base64
import copy
import io
import json
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

# Shaped like SillyTavern 1.12's PNG export: V1 mirrors at the top level, ST's extensions.
SILLYTAVERN_V2: dict[str, Any] = {
    "name": "Seraphina",
    "description": "{{char}} is a guardian of the Eldoria forest, a kind elf healer.",
    "personality": "caring, protective, compassionate, gentle",
    "scenario": "{{user}} wakes up in Seraphina's glade after being attacked by beasts.",
    "first_mes": '*You wake with a start.* "Easy now, {{user}}. You\'re safe here."',
    "mes_example": "<START>\n{{user}}: Who are you?\n{{char}}: *She smiles.* I am Seraphina.",
    "creatorcomment": "A gentle healer for cozy fantasy role-play.",
    "avatar": "none",
    "chat": "Seraphina - 2024-05-01@12h00m00s",
    "talkativeness": "0.5",
    "fav": False,
    "tags": ["fantasy", "elf", "healer"],
    "spec": "chara_card_v2",
    "spec_version": "2.0",
    "data": {
        "name": "Seraphina",
        "description": "{{char}} is a guardian of the Eldoria forest, a kind elf healer.",
        "personality": "caring, protective, compassionate, gentle",
        "scenario": "{{user}} wakes up in Seraphina's glade after being attacked by beasts.",
        "first_mes": '*You wake with a start.* "Easy now, {{user}}. You\'re safe here."',
        "mes_example": ("<START>\n{{user}}: Who are you?\n{{char}}: *She smiles.* I am Seraphina."),
        "creator_notes": "A gentle healer for cozy fantasy role-play.",
        "system_prompt": "",
        "post_history_instructions": "",
        "tags": ["fantasy", "elf", "healer"],
        "creator": "ST Default",
        "character_version": "1.0.0",
        "alternate_greetings": [
            '*The glade is quiet.* "You\'re awake. Good."',
            '"Don\'t move too fast, {{user}}."',
        ],
        "extensions": {
            "talkativeness": "0.5",
            "fav": False,
            "world": "Eldoria",
            "depth_prompt": {"prompt": "", "depth": 4, "role": "system"},
            "regex_scripts": [{"scriptName": "trim", "findRegex": "/\\s+$/", "replaceString": ""}],
        },
        "character_book": {
            "name": "Eldoria",
            "entries": [
                {
                    "keys": ["glade"],
                    "content": "The glade is protected by ancient wards.",
                    "extensions": {"position": 0, "exclude_recursion": False},
                    "enabled": True,
                    "insertion_order": 100,
                    "id": 0,
                    "comment": "glade",
                    "selective": False,
                    "constant": False,
                    "position": "before_char",
                }
            ],
            "extensions": {},
        },
    },
    "create_date": "2024-5-1 @12h 00m 00s 000ms",
}

V3_WITH_ASSETS: dict[str, Any] = {
    "spec": "chara_card_v3",
    "spec_version": "3.0",
    "data": {
        "name": "Captain Vex",
        "description": "A sky-pirate captain with a clockwork arm.",
        "tags": ["steampunk", "pirate"],
        "creator": "someone",
        "character_version": "2",
        "mes_example": "",
        "extensions": {"risuai": {"utilityBot": False, "sourceUrl": ""}, "depth_prompt": None},
        "system_prompt": "Write as {{char}} in third person. {{original}}",
        "post_history_instructions": "Keep replies under 200 words.",
        "first_mes": '"Welcome aboard the *Gale*, {{user}}."',
        "alternate_greetings": [],
        "personality": "",
        "scenario": "The airship Gale drifts above a storm.",
        "creator_notes": "Multilingual notes inside.",
        "character_book": {
            "name": "Skies",
            "description": "Places and people of the skies",
            "scan_depth": 6,
            "token_budget": 700,
            "recursive_scanning": True,
            "extensions": {"risu_fullWordMatching": True},
            "entries": [
                {
                    "keys": ["Gale", "ship"],
                    "content": "@@depth 2\nThe Gale is a three-masted airship.",
                    "extensions": {},
                    "enabled": True,
                    "insertion_order": 10,
                    "case_sensitive": False,
                    "use_regex": False,
                    "constant": False,
                    "name": "the ship",
                    "priority": 5,
                    "id": "e1",
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
        "assets": [
            {"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"},
            {
                "type": "background",
                "uri": "https://example.com/bg.webp",
                "name": "main",
                "ext": "webp",
            },
            {
                "type": "emotion",
                "uri": "embeded://assets/emotion/images/happy.png",
                "name": "happy",
                "ext": "png",
            },
        ],
        "nickname": "Vex",
        "creator_notes_multilingual": {"en": "Multilingual notes inside.", "zh": "多语言说明。"},
        "source": ["https://example.com/cards/vex"],
        "group_only_greetings": ['"All hands, we have guests."'],
        "creation_date": 1700000000,
        "modification_date": 1710000000,
        "x_future_field": {"kept": True},
    },
}

CHINESE_V2: dict[str, Any] = {
    "spec": "chara_card_v2",
    "spec_version": "2.0",
    "data": {
        "name": "林黛玉",
        "description": "{{char}}是《红楼梦》中的人物，林如海之女，寄居贾府，才情出众，多愁善感。",
        "personality": "敏感、聪慧、孤高、言语尖刻却心地纯良。",
        "scenario": "大观园潇湘馆，暮春时节，落花满地。",
        "first_mes": "（她抬眼看了看{{user}}）你来做什么？",
        "mes_example": "<START>\n{{user}}：妹妹在做什么？\n{{char}}：葬花。",
        "creator_notes": "",
        "system_prompt": "",
        "post_history_instructions": "",
        "alternate_greetings": ["花谢花飞花满天……"],
        "tags": ["红楼梦", "古典"],
        "creator": "",
        "character_version": "",
        "extensions": {},
    },
}


def card_png(
    chunks: dict[str, Any],
    *,
    size: tuple[int, int] = (400, 600),
    raw: dict[str, str] | None = None,
    picture: Image.Image | None = None,
) -> bytes:
    """A PNG carrying each card of ``chunks`` as base64 JSON in a ``tEXt`` chunk, as
    SillyTavern and RisuAI write them; ``raw`` adds chunks verbatim."""
    info = PngInfo()
    for keyword, card in chunks.items():
        text = json.dumps(card, ensure_ascii=False).encode()
        info.add_text(keyword, base64.b64encode(text).decode())
    for keyword, value in (raw or {}).items():
        info.add_text(keyword, value)
    out = io.BytesIO()
    (picture or Image.new("RGB", size, (30, 90, 160))).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def read_chunks(png: bytes) -> dict[str, Any]:
    """The JSON of every base64 text chunk of a PNG."""
    with Image.open(io.BytesIO(png)) as image:
        image.load()
        return {k: json.loads(base64.b64decode(v)) for k, v in image.text.items()}


def without_ours(card: dict[str, Any]) -> dict[str, Any]:
    """``card`` without ``data.extensions.fastnpc`` (what an export adds)."""
    card = copy.deepcopy(card)
    card["data"]["extensions"].pop("fastnpc", None)
    return card


def without_book(card: dict[str, Any]) -> dict[str, Any]:
    """``card`` without ``data.character_book`` (a card's book becomes a lorebook)."""
    card = copy.deepcopy(card)
    card["data"].pop("character_book", None)
    return card


def assert_book_kept(original: dict[str, Any], exported: dict[str, Any]) -> None:
    """Every field of the card's ``character_book`` (and of each entry) is exported with its
    value; the export may add the fields a lorebook always has."""
    for key, value in original.items():
        if key != "entries":
            assert exported[key] == value, key
    assert len(exported["entries"]) == len(original["entries"])
    for before, after in zip(original["entries"], exported["entries"], strict=True):
        assert {k: after[k] for k in before} == before
