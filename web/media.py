"""Photos in and out of the console: an upload is checked by decoding it and saved again without
its metadata; a stored photo goes only to whom the view allowed, never cached, never sniffed."""

from __future__ import annotations

from pathlib import Path

from flask import Response, abort, send_file
from werkzeug.datastructures import FileStorage

from core.images import MAX_BYTES, CleanImage, ImageRejected, clean_image
from core.settings import Settings

#: What a centralist may upload (Pillow formats, recognised by their bytes).
UPLOAD_FORMATS = ("JPEG", "PNG", "WEBP")
#: Larger photos are scaled down: enough to recognise someone, small enough to store.
MAX_SIDE = 2560
#: Types we write (core.images); anything else in the database is not served as an image.
SERVED_TYPES = frozenset({"image/jpeg", "image/png"})


class PhotoInvalid(ValueError):
    """An upload we refuse; the message is Dutch, for the form."""


def media_dir(settings: Settings, kind: str) -> Path:
    """var/media/actions or var/media/tips."""
    return settings.var_dir / "media" / kind


def read_upload(upload: FileStorage | None) -> CleanImage | None:
    """The uploaded photo, decoded and re-encoded as JPEG; None when no file was chosen."""
    if upload is None or not upload.filename:
        return None
    content = upload.stream.read(MAX_BYTES + 1)
    if not content:
        raise PhotoInvalid("Het gekozen bestand is leeg.")
    if len(content) > MAX_BYTES:
        raise PhotoInvalid("De foto is te groot: hoogstens 5 MB.")
    try:
        return clean_image(content, accept=UPLOAD_FORMATS, output="JPEG", max_side=MAX_SIDE)
    except ImageRejected as exc:
        if exc.reason == "too_many_pixels":
            raise PhotoInvalid("De foto heeft te veel pixels: hoogstens 40 megapixel.") from None
        raise PhotoInvalid("Dit bestand is geen foto in JPEG, PNG of WebP.") from None


def send_photo(directory: Path, name: str | None, content_type: str | None) -> Response:
    """The stored photo NAME from DIRECTORY; NAME comes from the database, never the request."""
    if not name or Path(name).name != name or name.startswith("."):
        abort(404)
    path = directory / name
    if not path.is_file():
        abort(404)
    response = send_file(path, mimetype=content_type if content_type in SERVED_TYPES
                         else "application/octet-stream", conditional=False, etag=False,
                         last_modified=None, max_age=None)
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


def discard(directory: Path, name: str | None) -> None:
    """Remove a photo whose database row was never stored."""
    if name and Path(name).name == name:
        (directory / name).unlink(missing_ok=True)
