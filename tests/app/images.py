"""Pictures for avatar and card tests, made with Pillow (and one hand-made bomb header)."""

from __future__ import annotations

import io
import random
import struct
import zlib

from PIL import Image


def picture(size: tuple[int, int], fmt: str = "PNG", colour: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format=fmt)
    return out.getvalue()


def framed(width: int, height: int, border: int) -> bytes:
    """A red centre with blue bands ``border`` wide on the left and right (PNG)."""
    image = Image.new("RGB", (width, height), "red")
    image.paste("blue", (0, 0, border, height))
    image.paste("blue", (width - border, 0, width, height))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def noise_png(size: tuple[int, int], seed: int = 1) -> bytes:
    """An incompressible PNG (random pixels): about 3 bytes per pixel."""
    rng = random.Random(seed)
    image = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming ``width``×``height`` pixels with almost no data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    idat = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def pixels(png: bytes) -> tuple[tuple[int, int], set[tuple[int, ...]]]:
    """Size and the set of distinct RGBA colours of a PNG."""
    with Image.open(io.BytesIO(png)) as image:
        rgba = image.convert("RGBA")
        return rgba.size, {tuple(c) for _, c in rgba.getcolors(1 << 20) or []}
