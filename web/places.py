"""Place search as the web answers it, to the console's map (session) and to the API (token):
both call routing.places.search_places and dump its suggestions and errors the same way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from routing.place_index import Suggestion
from routing.places import MAX_LIMIT, MAX_QUERY, PlaceQueryError

Translate = Callable[..., str]

#: Dutch message per PlaceQueryError id, with the HTTP status it answers.
ERRORS: dict[str, tuple[int, str]] = {
    "empty_query": (400, "Typ een postcode, plaatsnaam, gemeente of coördinaten."),
    "query_too_long": (400, "Te lang: hoogstens {limit} tekens."),
    "invalid_limit": (400, "Te groot: hoogstens {limit}."),
    "invalid_coordinates": (422, "Dit zijn geen geldige coördinaten. Geef breedtegraad en "
                                 "lengtegraad in graden, bijvoorbeeld 52.0907, 5.1214."),
    "outside_netherlands": (422, "Deze coördinaten liggen niet in of bij Nederland (meer dan "
                                 "25 km van elke gemeente). Geef breedtegraad en lengtegraad, "
                                 "bijvoorbeeld 52.0907, 5.1214."),
}
#: Dutch text per note on a suggestion; {placeholders} from the note's values.
NOTES = {
    "pc6_as_pc4": "Alleen viercijferige postcodes zijn bekend: {pc6} valt in postcodegebied "
                  "{pc4}.",
    "po_box": "Postbusnummers zonder eigen gebied: het midden van {place} is gekozen.",
    "swapped": "Breedte- en lengtegraad omgedraaid: zo liggen ze in Nederland.",
    "outside_municipality": "Dit punt ligt {km} km buiten Nederland; dichtstbijzijnde "
                            "gemeente: {municipality}.",
}


def suggestion_json(suggestion: Suggestion, translate: Translate) -> dict[str, Any]:
    """A suggestion as both endpoints answer it."""
    note = suggestion.note
    return {
        "label": suggestion.label, "kind": suggestion.kind.value,
        "lat": round(suggestion.lat, 6), "lon": round(suggestion.lon, 6),
        "radius_m": suggestion.radius_m,
        "municipality": {"code": suggestion.municipality_code, "name": suggestion.municipality},
        "meldkamer": {"code": suggestion.meldkamer_code, "name": suggestion.meldkamer},
        "note": None if note is None else {"id": note.id,
                                           "message": translate(NOTES[note.id], **note.values)},
    }


def places_json(query: str, suggestions: list[Suggestion],
                translate: Translate) -> dict[str, Any]:
    return {"query": query, "items": [suggestion_json(s, translate) for s in suggestions]}


def error_parts(exc: PlaceQueryError) -> tuple[int, str, dict[str, Any]]:
    """(HTTP status, Dutch message key, its values) for a search that cannot be answered."""
    status, message = ERRORS[exc.error_id]
    limit = MAX_LIMIT if exc.error_id == "invalid_limit" else MAX_QUERY
    return status, message, {"limit": limit}
