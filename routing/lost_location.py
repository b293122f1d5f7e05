"""The <location> of a LoST request (RFC 5222, Section 12), read and routed by `resolve`.

A geodetic-2d shape is read by the PIDF-LO shape reader (routing.pidf) and routed by its
point, a civic address by its postcode: exactly what the IVR does with a PIDF-LO or a keyed
postcode. Whatever cannot be mapped is a LostError naming the RFC's error for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from routing.geoshape import GML, GS, WGS84
from routing.pidf import CA, PidfError, location_from_elements
from routing.resolve import NO_CALLER, RouteDecision, RouteRequest, resolve

LOST_NS = "urn:ietf:params:xml:ns:lost1"
GEODETIC_2D = {(GML, "Point"), (GML, "Polygon"), (GS, "Circle"), (GS, "Ellipse"),
               (GS, "ArcBand")}
PROFILES = ("geodetic-2d", "civic")
#: What resolve says when it routed by the location it was given.
ROUTED_BY = {"geodetic-2d": "coordinates", "civic": "postcode"}


class LostError(Exception):
    """An answer that is one of the RFC's errors: KIND is its element name (badRequest, ...)."""

    def __init__(self, kind: str, message: str, **attributes: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.attributes = attributes


@dataclass(frozen=True)
class Mapped:
    """A location that resolve routed: the <location> used, how it was read (WHAT), the
    decision, the <civicAddress> for a civic one, and the notes that matter to a LoST client."""

    location_id: str
    profile: str
    what: str
    decision: RouteDecision
    civic: Any = None
    notes: tuple[str, ...] = ()


def map_location(session: Session, request: Any, now: datetime, *,
                 national_fallback: str) -> Mapped:
    """The first <location> of a profile we read (Section 8.3.1), routed by resolve."""
    profile, location = _pick(request)
    civic = None
    if profile == "geodetic-2d":
        shape, lat, lon = _point(location)
        what = f"{shape} ({lat:.5f}, {lon:.5f})"
        route = RouteRequest(lat=lat, lon=lon)
    else:
        civic, pc4 = _postcode(location)
        what = f"postcode {pc4}"
        route = RouteRequest(postcode=pc4)
    decision = resolve(session, route, now, national_fallback=national_fallback)
    notes = tuple(note for note in decision.notes if note != NO_CALLER)
    if decision.reason != ROUTED_BY[profile] or decision.place is None:
        raise LostError("notFound", f"no Dutch meldkamer for {what}: {'; '.join(notes)}")
    return Mapped(location.get("id"), profile, what, decision, civic, notes)


def local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _pick(request: Any) -> tuple[str, Any]:
    unknown = []
    for location in request.iterfind(f"{{{LOST_NS}}}location"):
        profile = location.get("profile") or _sniff(location)
        if profile in PROFILES:
            return profile, location
        unknown.append(location.get("profile") or "unspecified")
    raise LostError("locationProfileUnrecognized", "no <location> has a profile this server "
                    f"reads ({', '.join(PROFILES)})", unsupportedProfiles=" ".join(unknown))


def _sniff(location: Any) -> str | None:
    """The profile of a <location> without one, from its content (Section 12.1)."""
    keys = {_key(child.tag) for child in location}
    if keys & GEODETIC_2D:
        return "geodetic-2d"
    return "civic" if (CA, "civicAddress") in keys else None


def _point(location: Any) -> tuple[str, float, float]:
    shapes = list(location)
    if len(shapes) != 1:
        raise LostError("locationInvalid", f"a geodetic-2d <location> holds one shape, "
                                           f"not {len(shapes)}")
    shape = shapes[0]
    if _key(shape.tag) not in GEODETIC_2D:
        raise LostError("locationInvalid", f"<{local_name(shape.tag)}> is not a geodetic-2d "
                        "shape (Point, Polygon, Circle, Ellipse or ArcBand; RFC 5222, "
                        "Section 12.2)")
    srs = shape.get("srsName")
    if srs is not None and not WGS84.fullmatch(srs.strip()):
        # Section 13.1 names SRSInvalid for this, but the schema's exceptionContainer has no
        # such element, so a valid answer can only say locationInvalid.
        raise LostError("locationInvalid", f"srsName {srs[:80]!r} is not WGS84 (EPSG 4326 "
                                           "or 4979)")
    try:
        found = location_from_elements([shape])
    except PidfError as exc:
        raise LostError("locationInvalid", str(exc)) from None
    assert found is not None and found.lat is not None and found.lon is not None
    return local_name(shape.tag), found.lat, found.lon


def _postcode(location: Any) -> tuple[Any, str]:
    children = list(location)
    if len(children) != 1 or _key(children[0].tag) != (CA, "civicAddress"):
        raise LostError("locationInvalid", "a civic <location> holds one <civicAddress> "
                                           "(RFC 5139)")
    civic = children[0]
    found = location_from_elements([civic])
    country = found.country if found else None
    if country not in (None, "NL"):
        raise LostError("notFound", f"a civic address in {country} lies outside the "
                                    "Netherlands; this server maps Dutch addresses only")
    if not (civic.findtext(f"{{{CA}}}PC") or "").strip():
        raise LostError("notFound", "the civic address has no postcode (PC); this server maps "
                                    "a Dutch address by its postcode")
    if found is None or found.postcode is None:
        raise LostError("locationInvalid", "; ".join(found.notes) if found else "no postcode")
    return civic, found.postcode


def _key(tag: str) -> tuple[str, str]:
    namespace, _, local = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    return namespace, local
