"""Place search for the map: a postcode, a place or municipality name, or coordinates, typed
by a centralist (or sent by a dispatch system), to a point, a radius and who answers there.

Offline, from the reference data only. The index (routing.place_index) is built once per
database and process and again when the reference data changed (`routing.reference_cache`);
a search scans it in memory (well under a millisecond).

Text is matched without regard to case, accents and punctuation ("fryslan" finds
"Súdwest-Fryslân", "s-grav" finds "'s-Gravenhage"): a whole name first, then names that
start with the text, then names with a word that starts with it, then names that contain it;
within each, the place with more PC4 areas first.
"""

from __future__ import annotations

import re
import time
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import islice, takewhile

from sqlalchemy.orm import Session

from core.errors import BurgernetError
from core.models import Municipality
from routing.directory import boundary_index
from routing.place_index import (
    MunicipalityRow,
    Note,
    PlaceIndex,
    PlaceKind,
    PostcodeRow,
    Suggestion,
    normalise,
)
from routing.reference_cache import (
    CHECK_EVERY,
    POSTCODE_ROWS,
    ReferenceCache,
    municipality_query,
)

MAX_QUERY = 100
DEFAULT_LIMIT = 10
MAX_LIMIT = 25
#: The circle around typed coordinates: a street or two.
COORDINATE_RADIUS_M = 1_000
#: Seconds between checks whether the reference data in the database changed.

POSTCODE = re.compile(r"(?P<digits>[0-9]{1,4})(?:\s*(?P<letters>[A-Za-z]{1,2}))?")
_NUMBER = r"\d{1,3}(?:[.,]\d+)?"
_LETTER = r"NB|ZB|OL|WL|[NSZEOW]"
_SIDE = (r"(?:(?P<pre{s}>{l})\s*)?(?:(?P<sign{s}>[+-])\s*)?(?P<deg{s}>{n})(?:\s*(?P<mark{s}>°))?"
         r"(?:\s*(?P<min{s}>{n})\s*['′’](?:\s*(?P<sec{s}>{n})\s*(?:\"|″|”|'')?)?)?"
         r"(?:\s*(?P<post{s}>{l})){q}")


def _pair(lazy: str) -> re.Pattern[str]:
    sides = [_SIDE.format(s=s, n=_NUMBER, l=_LETTER, q=lazy) for s in "ab"]
    return re.compile(sides[0] + r"\s*(?:[,;/]\s*|\s+)" + sides[1], re.IGNORECASE)


#: Two readings of a pair: a compass letter between the numbers belongs to the first ("52.1 N
#: 5.1 E") unless the first already has one in front ("N 52.1 E 5.1").
COORDINATES = (_pair("?"), _pair("??"))
LATITUDE_LETTERS = {"N": 1, "NB": 1, "S": -1, "Z": -1, "ZB": -1}
LONGITUDE_LETTERS = {"E": 1, "O": 1, "OL": 1, "W": -1, "WL": -1}


class PlaceQueryError(BurgernetError, ValueError):
    """A search that cannot be answered; ERROR_ID says why (see ERRORS)."""

    def __init__(self, error_id: str, message: str) -> None:
        super().__init__(message)
        self.error_id = error_id


ERRORS = ("empty_query", "query_too_long", "invalid_limit", "invalid_coordinates",
          "outside_netherlands")


@dataclass(frozen=True)
class TypedPoint:
    """Coordinates as typed; LETTERED when compass letters said which is which."""

    lat: float
    lon: float
    lettered: bool


def search_places(session: Session, query: str, limit: int = DEFAULT_LIMIT) -> list[Suggestion]:
    """At most LIMIT suggestions for QUERY, best first; [] when nothing matches.

    Raises PlaceQueryError for an empty or too long query, and for coordinates that are not
    valid or lie farther than 25 km from every Dutch municipality.
    """
    text = _checked(query, limit)
    index = place_index(session)
    postcode = POSTCODE.fullmatch(text)
    if postcode and (len(postcode["digits"]) == 4 or not postcode["letters"]):
        return _postcodes(index, postcode["digits"], postcode["letters"], limit)
    point = parse_coordinates(text)
    if point is not None:
        return [_at_coordinates(session, index, point)]
    return _named(index, normalise(text), limit)


def _checked(query: str, limit: int) -> str:
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise PlaceQueryError("invalid_limit", f"limit {limit!r} is not 1 to {MAX_LIMIT}")
    if len(query) > MAX_QUERY:
        raise PlaceQueryError("query_too_long",
                              f"query is {len(query)} characters long (at most {MAX_QUERY})")
    text = " ".join(query.split())
    if not text:
        raise PlaceQueryError("empty_query", "query is empty")
    return text


def _postcodes(index: PlaceIndex, digits: str, letters: str | None,
               limit: int) -> list[Suggestion]:
    """A whole PC4 (a PC6 is searched as its PC4, with a note), or the PC4s that start with
    fewer digits, in order."""
    if len(digits) == 4:
        found = index.postcodes.get(digits)
        if found is None:
            return []
        if letters is not None and len(letters) == 2:
            pc6 = f"{digits} {letters.upper()}"
            found = replace(found, note=found.note or Note("pc6_as_pc4", {"pc6": pc6,
                                                                           "pc4": digits}))
        return [found]
    start = bisect_left(index.pc4s, digits)
    following = islice(index.pc4s, start, start + limit)
    return [index.postcodes[pc4] for pc4 in takewhile(lambda p: p.startswith(digits), following)]


def _named(index: PlaceIndex, wanted: str, limit: int) -> list[Suggestion]:
    """Municipalities and places whose normalised name matches WANTED, best first, each once."""
    if not wanted:
        return []
    compact = wanted.replace(" ", "")
    word = " " + wanted
    best: dict[str, tuple[tuple[int, int, int, str], Suggestion]] = {}
    for entry in index.entries:
        key = entry.key
        if key == wanted:
            tier = 0
        elif key.startswith(wanted):
            tier = 1
        elif word in key:
            tier = 2
        elif wanted in key or compact in entry.compact:
            tier = 3
        else:
            continue
        kind = 0 if entry.suggestion.kind == PlaceKind.MUNICIPALITY else 1
        rank = (tier, -entry.weight, kind, entry.suggestion.label)
        known = best.get(entry.ident)
        if known is None or rank < known[0]:
            best[entry.ident] = (rank, entry.suggestion)
    return [suggestion for _rank, suggestion in sorted(best.values(), key=lambda x: x[0])][:limit]


# --- coordinates -----------------------------------------------------------------------------

def parse_coordinates(text: str) -> TypedPoint | None:
    """The point in "52.0907, 5.1214", "52,0907 5,1214", "N 52.0907 E 5.1214",
    "52°05'26.5\"N 5°07'17.0\"E" and the like; None when TEXT is not a pair of coordinates.

    Each number needs a fraction, a degree sign or a compass letter, so "52 5" (or a
    half-typed "52,0") is not taken for coordinates. Without compass letters the order is
    latitude, longitude. Raises PlaceQueryError when the numbers are out of range.
    """
    match = COORDINATES[0].fullmatch(text)
    if match is not None and match["prea"] and match["posta"]:
        match = COORDINATES[1].fullmatch(text)
    if match is None:
        return None
    first, second = _side(match, "a"), _side(match, "b")
    if first is None or second is None:
        return None
    if first[1] in LONGITUDE_LETTERS or second[1] in LATITUDE_LETTERS:
        first, second = second, first
    north, east = first[1] or "N", second[1] or "E"
    if north not in LATITUDE_LETTERS or east not in LONGITUDE_LETTERS:
        raise PlaceQueryError("invalid_coordinates",
                              "give one latitude (N/S) and one longitude (E/W)")
    lat = first[0] * LATITUDE_LETTERS[north]
    lon = second[0] * LONGITUDE_LETTERS[east]
    if not -90 <= lat <= 90 or not -180 <= lon <= 180:
        raise PlaceQueryError("invalid_coordinates",
                              f"({lat}, {lon}) is not a latitude (-90..90) and longitude "
                              "(-180..180)")
    return TypedPoint(lat, lon, lettered=bool(first[1] or second[1]))


def _side(match: re.Match[str], s: str) -> tuple[float, str | None] | None:
    """(degrees, compass letter) of one side of the pair; None when it is a bare integer."""
    pre, post = match[f"pre{s}"], match[f"post{s}"]
    if pre and post:
        return None
    letter = (pre or post or "").upper() or None
    degrees = _number(match[f"deg{s}"])
    minutes = _number(match[f"min{s}"]) if match[f"min{s}"] else 0.0
    seconds = _number(match[f"sec{s}"]) if match[f"sec{s}"] else 0.0
    if not (re.search(r"[.,]", match[f"deg{s}"]) or match[f"mark{s}"] or letter):
        return None
    if minutes >= 60 or seconds >= 60:
        raise PlaceQueryError("invalid_coordinates",
                              "minutes and seconds of a coordinate are below 60")
    value = degrees + minutes / 60 + seconds / 3600
    return (-value if match[f"sign{s}"] == "-" else value), letter


def _number(text: str) -> float:
    return float(text.replace(",", "."))


def _at_coordinates(session: Session, index: PlaceIndex, point: TypedPoint) -> Suggestion:
    """The suggestion for a typed point: its municipality, or the nearest one within 25 km
    (a point just across the border). Latitude and longitude typed the wrong way round are
    turned when no compass letters were given and only the other order lies in or near the
    Netherlands."""
    boundaries = boundary_index(session)
    lat, lon = point.lat, point.lon
    place, note = boundaries.find(lat, lon), None
    if place is None and not point.lettered and abs(lon) <= 90:
        place = boundaries.find(lon, lat)
        if place is not None:
            lat, lon, note = lon, lat, Note("swapped")
    if place is None:
        raise PlaceQueryError("outside_netherlands",
                              f"point ({lat:.5f}, {lon:.5f}) lies more than 25 km from every "
                              "Dutch municipality")
    if note is None and place.distance_m > 0:
        note = Note("outside_municipality", {"km": f"{place.distance_m / 1000:.1f}",
                                             "municipality": place.municipality})
    meldkamer = index.meldkamers.get(place.meldkamer_code, place.meldkamer_code)
    return Suggestion(f"{lat:.5f}, {lon:.5f}", PlaceKind.COORDINATES, lat, lon,
                      COORDINATE_RADIUS_M, place.municipality_code, place.municipality,
                      place.meldkamer_code, meldkamer, note)


# --- the index, once per database and process ---------------------------------------------------

_indexes = ReferenceCache(lambda session: build_index(session),
                          keep=lambda index: bool(index.postcodes))


def place_index(session: Session, *, check_every: float = CHECK_EVERY,
                clock: Callable[[], float] = time.monotonic) -> PlaceIndex:
    """The index of SESSION's database: built on first use, rebuilt when a check (at most
    every CHECK_EVERY seconds) finds that the reference data changed."""
    return _indexes.get(session, check_every=check_every, clock=clock)


def warm_up(session: Session) -> None:
    """Build the index now (a few tenths of a second) instead of on the first keystroke."""
    place_index(session)


def clear_cache() -> None:
    """Forget every index; the next search builds it again."""
    _indexes.clear()


_MUNICIPALITY_ROWS = municipality_query(Municipality.boundary)


def build_index(session: Session) -> PlaceIndex:
    """The index from the reference data in SESSION's database."""
    municipalities = [MunicipalityRow(*row) for row in session.execute(_MUNICIPALITY_ROWS)]
    postcodes = [PostcodeRow(*row) for row in session.execute(POSTCODE_ROWS)]
    return PlaceIndex(municipalities, postcodes)
