"""Photos from outside (MMS tips, console uploads): decoded, checked, and saved again with only
their pixels, so EXIF (GPS position, camera, time), comments and colour profiles are gone."""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

MAX_BYTES = 5 * 1024 * 1024
MAX_PIXELS = 40_000_000
#: What we write, by Pillow format: content type and file suffix.
OUTPUTS = {"JPEG": ("image/jpeg", ".jpg"), "PNG": ("image/png", ".png")}
#: What Pillow raises on truncated, corrupt or hostile files.
UNREADABLE = (UnidentifiedImageError, OSError, SyntaxError, ValueError,
              Image.DecompressionBombError)


class ImageRejected(ValueError):
    """Not a photo we keep. REASON says why in a word: too_large, too_many_pixels, unreadable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class CleanImage:
    """A photo encoded again from its pixels alone."""

    content: bytes
    content_type: str
    suffix: str
    width: int
    height: int


def clean_image(content: bytes, *, accept: Iterable[str], output: str = "JPEG",
                max_side: int | None = None) -> CleanImage:
    """Decode CONTENT as one of the Pillow formats in ACCEPT (judged by its bytes, never by a
    name or a declared type), turn it upright, and encode it again as OUTPUT without metadata."""
    if len(content) > MAX_BYTES:
        raise ImageRejected("too_large", f"larger than {MAX_BYTES // (1024 * 1024)} MB")
    try:
        image = Image.open(io.BytesIO(content), formats=list(accept))
    except UNREADABLE as exc:
        raise ImageRejected("unreadable", f"not a readable image: {exc}") from None
    with image:
        if image.width * image.height > MAX_PIXELS:  # judged from the header, before decoding
            raise ImageRejected("too_many_pixels", "the photo has too many pixels")
        try:
            image.load()
            upright = ImageOps.exif_transpose(image) or image
            pixels = _flatten(upright) if output == "JPEG" else upright.convert("RGBA")
        except UNREADABLE as exc:
            raise ImageRejected("unreadable", f"not a readable image: {exc}") from None
    if max_side and max(pixels.size) > max_side:
        pixels.thumbnail((max_side, max_side))
    pixels.info.clear()  # JPEG and PNG writers copy comments and colour profiles from here
    buffer = io.BytesIO()
    pixels.save(buffer, format=output, **({"quality": 85} if output == "JPEG" else {}))
    content_type, suffix = OUTPUTS[output]
    return CleanImage(buffer.getvalue(), content_type, suffix, *pixels.size)


def _flatten(image: Image.Image) -> Image.Image:
    """RGB for JPEG; transparent parts become white instead of whatever colour hid beneath."""
    if image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and
                                              "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, "white")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def store_image(image: CleanImage, directory: Path) -> str:
    """Write IMAGE under a new random name in DIRECTORY; returns the name (never overwrites)."""
    directory.mkdir(parents=True, exist_ok=True)
    name = secrets.token_hex(16) + image.suffix
    with open(directory / name, "xb") as handle:
        handle.write(image.content)
    return name
