"""Character cards inside PNG files: ``tEXt`` chunks ``chara`` (V2) and ``ccv3`` (V3), each the
base64 of the card's UTF-8 JSON. Read and written with Pillow (``PngInfo``, ``Image.text``).

Blocking CPU work: callers run these functions in a worker thread.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from dataclasses import dataclass
from typing import Any

import orjson
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from app.errors import InvalidImage
from app.services.card_mapping import CardError
from app.services.images import AVATAR_SIZE, opened, to_avatar

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
V2_CHUNK = "chara"
V3_CHUNK = "ccv3"


@dataclass(frozen=True)
class PngCard:
    card: Any  # the decoded JSON (``ccv3`` when present, else ``chara``)
    avatar: bytes  # the picture normalised like an uploaded avatar


def encode_chunk(card: dict[str, Any]) -> str:
    """A card as a ``tEXt`` value: base64 of its UTF-8 JSON."""
    return base64.b64encode(orjson.dumps(card)).decode("ascii")


def decode_chunk(value: str) -> Any:
    """A ``tEXt`` value back to JSON (``CardError`` for bad base64, UTF-8 or JSON)."""
    try:
        raw = base64.b64decode("".join(value.split()), validate=True)
        return orjson.loads(raw)
    except (binascii.Error, ValueError) as exc:  # orjson.JSONDecodeError is a ValueError
        raise CardError(f"the card chunk is not base64 of JSON ({exc})") from None


def read_png_card(data: bytes) -> PngCard:
    """The card in a PNG and its picture as an avatar (``CardError`` if either is broken)."""
    try:
        with opened(data, formats=("PNG",)) as image:
            image.load()  # text chunks after the image data are read with it
            texts = dict(getattr(image, "text", {}))
            avatar = to_avatar(image)
    except InvalidImage as exc:
        raise CardError(f"not a readable PNG: {exc.message}") from None
    chunk = texts.get(V3_CHUNK) or texts.get(V2_CHUNK)
    if not isinstance(chunk, str):
        raise CardError("the PNG has no chara or ccv3 text chunk")
    return PngCard(card=decode_chunk(chunk), avatar=avatar)


def plain_picture(name: str) -> bytes:
    """A 256×256 PNG in one colour derived from ``name`` (for characters without an avatar)."""
    r, g, b = hashlib.sha256(name.encode()).digest()[:3]
    out = io.BytesIO()
    Image.new("RGB", AVATAR_SIZE, (r // 2 + 64, g // 2 + 64, b // 2 + 64)).save(out, format="PNG")
    return out.getvalue()


def write_png_card(picture: bytes, chunks: dict[str, dict[str, Any]]) -> bytes:
    """``picture`` (a PNG we made) re-encoded with one ``tEXt`` chunk per ``chunks`` entry."""
    info = PngInfo()
    for keyword, card in chunks.items():
        info.add_text(keyword, encode_chunk(card))
    out = io.BytesIO()
    with Image.open(io.BytesIO(picture), formats=["PNG"]) as image:
        image.save(out, format="PNG", pnginfo=info)
    return out.getvalue()
