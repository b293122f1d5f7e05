"""What every request may carry, checked once for the whole app before any view runs.

- Numbers that name rows stay within the database's integer columns: `<int:…>` in a URL
  takes 0 to `MAX_ID` (larger is a 404, as an unknown id is), a page number is clamped to
  `MAX_PAGE`. Python's unbounded ints otherwise reach the database, where SQLite refuses
  anything beyond 64 bits (OverflowError) and PostgreSQL an OFFSET beyond bigint: a 500.
- No text holds a NUL character: PostgreSQL cannot store one in a text column and fails the
  statement, so a NUL in a path, a query or a form is refused with 400 before anything is
  read or written. JSON bodies are checked by their readers with `unstorable`, which also
  refuses a lone surrogate (a JSON escape such as \\ud800 that is no character: no database
  driver can encode it). Forms and paths cannot carry those: they are decoded as UTF-8.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, request
from werkzeug.datastructures import MultiDict
from werkzeug.routing import IntegerConverter, Map

from core.models import MAX_ID
from web.i18n import translate

#: The last page a list may ask for (100,000 pages of 100 rows is beyond any real list).
MAX_PAGE = 100_000
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
NUL_REFUSED = "Het verzoek bevat een teken dat niet is toegestaan (NUL)."


class IdConverter(IntegerConverter):
    """`<int:…>` in every route: a row id, 0 to MAX_ID; anything larger matches no route."""

    def __init__(self, map: Map, fixed_digits: int = 0, min: int | None = None,  # noqa: A002
                 max: int | None = MAX_ID, signed: bool = False) -> None:  # noqa: A002
        super().__init__(map, fixed_digits, min, max, signed)


def init_app(app: Flask) -> None:
    """Install the bounded `int` converter (before any blueprint adds its routes) and the
    NUL check before every request."""
    app.url_map.converters["int"] = IdConverter
    app.before_request(refuse_nul)


def refuse_nul() -> None:
    """400 for a NUL in the path, the query or a form (its field names included)."""
    if "\x00" in request.path or _pairs_hold_nul(request.args):
        abort(400, description=translate(NUL_REFUSED))
    if request.mimetype in FORM_TYPES and _pairs_hold_nul(request.form):
        abort(400, description=translate(NUL_REFUSED))


def unstorable(value: Any) -> bool:
    """Whether a decoded JSON value has a string (a key included) that no database takes:
    one with a NUL or a lone surrogate."""
    if isinstance(value, str):
        return "\x00" in value or not _encodable(value)
    if isinstance(value, dict):
        return any(unstorable(key) or unstorable(item) for key, item in value.items())
    if isinstance(value, list):
        return any(unstorable(item) for item in value)
    return False


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _pairs_hold_nul(pairs: MultiDict[str, str]) -> bool:
    return any("\x00" in key or any("\x00" in value for value in pairs.getlist(key))
               for key in pairs)


def page_number(name: str = "page") -> int:
    """The page asked for in the query: 1 when it is missing or not a number, at most
    MAX_PAGE."""
    text = request.args.get(name, "").strip()
    if not text.isdecimal() or not text.isascii():
        return 1
    return max(1, min(int(text) if len(text) <= 7 else MAX_PAGE, MAX_PAGE))
