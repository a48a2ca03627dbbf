"""Avatar pictures: decode an upload safely and normalise it to a 256×256 PNG (Pillow).

Everything here is blocking CPU work: callers run it in a worker thread
(``trio.to_thread.run_sync``). An upload is refused (``InvalidImage``) unless Pillow
identifies it as PNG, JPEG or WebP with at most ``MAX_PIXELS`` pixels; the pixel count is
read from the header and checked before any pixel data is decoded, so a decompression bomb
is never expanded. Pillow's own bomb check (``Image.MAX_IMAGE_PIXELS``, ~89 MP) is a second
line: its warning and error are refused the same way.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image, ImageOps

from app.errors import InvalidImage

AVATAR_SIZE = (256, 256)
MAX_PIXELS = 40_000_000
FORMATS = ("PNG", "JPEG", "WEBP")

# What Pillow raises for data it cannot decode (truncated, corrupt, unknown format).
DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


@contextmanager
def opened(data: bytes, *, formats: tuple[str, ...] = FORMATS) -> Iterator[Image.Image]:
    """``data`` opened lazily (header only) and checked: a format of ``formats``, at most
    ``MAX_PIXELS`` pixels. Decoding errors inside the block become ``InvalidImage`` too."""
    try:
        with Image.open(io.BytesIO(data), formats=list(formats)) as image:
            width, height = image.size
            if width < 1 or height < 1 or width * height > MAX_PIXELS:
                raise InvalidImage(
                    f"the image has {width}x{height} pixels; at most {MAX_PIXELS:,} are accepted"
                )
            yield image
    except DECODE_ERRORS as exc:
        raise InvalidImage(f"not a PNG, JPEG or WebP image ({type(exc).__name__})") from None


def to_avatar(image: Image.Image) -> bytes:
    """The image's first frame, centre-cropped and scaled to 256×256, as PNG bytes (RGBA)."""
    image.seek(0)
    rgba = ImageOps.exif_transpose(image).convert("RGBA")
    fitted = ImageOps.fit(rgba, AVATAR_SIZE, method=Image.Resampling.LANCZOS)
    out = io.BytesIO()
    fitted.save(out, format="PNG", optimize=False)
    return out.getvalue()


def normalise_avatar(data: bytes) -> bytes:
    """A 256×256 PNG centre crop of an uploaded PNG/JPEG/WebP (``InvalidImage`` otherwise).

    Deterministic: a PNG this function produced comes out byte for byte the same.
    """
    with opened(data) as image:
        return to_avatar(image)
