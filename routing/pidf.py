"""The caller's location from a SIP INVITE: the Geolocation header (RFC 6442) and PIDF-LO.

PIDF-LO (RFC 4119) carries a geodetic shape in the GML profile of RFC 5491 (Point, Circle,
Ellipse, ArcBand, Polygon, ...) and/or a civic address (RFC 5139). An INVITE that conveys a
location by value has a multipart/mixed body with the SDP and an application/pidf+xml part
whose Content-ID the Geolocation header names as a cid: URI. A location by reference (an
https: or sip: URI) would need a dereference protocol we do not speak, so it counts as none.

Bodies come from the network: XML with a DOCTYPE (and so any entity declaration) is
refused, and anything that cannot be read raises PidfError with the reason.
"""

from __future__ import annotations

import email
import email.policy
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote
from xml.etree import ElementTree as ET
from xml.parsers import expat

import shapely

from core.errors import BurgernetError
from routing.postcode import postcode_or_reason

PIDF = "urn:ietf:params:xml:ns:pidf"
GP = "urn:ietf:params:xml:ns:pidf:geopriv10"
GML = "http://www.opengis.net/gml"
GS = "http://www.opengis.net/pidflo/1.0"
CA = "urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr"
#: The civic format of the original RFC 4119, before RFC 5139 replaced it.
CL = "urn:ietf:params:xml:ns:pidf:geopriv10:civicLoc"

MAX_BODY = 64 * 1024
PIDF_TYPES = {"application/pidf+xml", "application/xml", "text/xml"}
#: WGS84 2D (4326) or 3D (4979, "lat lon height"), the two CRSs RFC 5491 allows. The version
#: segment of the URN may be missing altogether ("urn:ogc:def:crs:EPSG:4326"), as in the
#: examples of RFC 5222 (Figure 15).
WGS84 = re.compile(r"(?:urn:ogc:def:crs:EPSG:(?:[0-9.]*:)?|EPSG:|http://www\.opengis\.net/gml/"
                   r"srs/epsg\.xml#)(4326|4979)", re.IGNORECASE)
METRES = {"urn:ogc:def:uom:EPSG::9001", "m", "metre", "meter"}
CIVIC = {(CA, "civicAddress"), (CL, "civicLoc")}
CENTRED = {(GS, "Circle"), (GS, "Ellipse"), (GS, "ArcBand"), (GS, "Sphere"), (GS, "Ellipsoid")}


class PidfError(BurgernetError, ValueError):
    """A location body or header that cannot be read; the message says what is wrong."""

    error_id = "malformed_pidf"


@dataclass(frozen=True)
class GeolocationRef:
    """One URI of a Geolocation header."""

    uri: str

    @property
    def cid(self) -> str | None:
        """The Content-ID this cid: URI names (RFC 2392), without angle brackets."""
        if self.uri[:4].lower() != "cid:":
            return None
        return unquote(self.uri[4:]).strip("<>")

    @property
    def by_reference(self) -> bool:
        return self.cid is None


@dataclass(frozen=True)
class Location:
    """What a PIDF-LO tells about where the caller is; any field may be missing.

    POSTCODE is a Dutch PC4 and is only set for a civic address in the Netherlands (or
    without a country): a Belgian "2000" must not be read as Dutch 2000 (Haarlem).
    """

    lat: float | None = None
    lon: float | None = None
    radius_m: float | None = None
    shape: str | None = None
    postcode: str | None = None
    country: str | None = None
    province: str | None = None
    city: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def has_point(self) -> bool:
        return self.lat is not None and self.lon is not None


def parse_geolocation_header(value: str | None) -> tuple[GeolocationRef, ...]:
    """The URIs of a Geolocation header value (several headers may be joined by commas)."""
    if value is None or not value.strip():
        return ()
    uris = re.findall(r"<([^<>]*)>", value)
    if not uris or not all(u.strip() for u in uris):
        raise PidfError(f"Geolocation header {value[:80]!r} has no <URI>")
    return tuple(GeolocationRef(u.strip()) for u in uris)


def location_from_body(body: str | bytes | None, content_type: str | None = None,
                       geolocation_header: str | None = None) -> Location | None:
    """The location conveyed by value in an INVITE body, or None when there is none.

    BODY is a bare PIDF-LO document or a whole multipart body; CONTENT_TYPE is the
    INVITE's Content-Type (without it, a body starting with "--" is read as multipart with
    the boundary of its first line). When the Geolocation header names cid: URIs, the
    part with that Content-ID is used; otherwise the first PIDF part.
    """
    refs = parse_geolocation_header(geolocation_header)
    data = _bytes(body)
    if not data.strip():
        return None
    media = (content_type or "").split(";", 1)[0].strip().lower()
    start = data.lstrip()
    if media.startswith("multipart/") or (not media and start.startswith(b"--")):
        parts = _mime_parts(data, content_type)
    elif media in PIDF_TYPES or (not media and start.startswith(b"<")):
        return parse_pidf(data)
    else:
        return None
    cids = [ref.cid for ref in refs if ref.cid is not None]
    if cids:
        by_id = {cid: payload for cid, _, payload in parts if cid}
        for cid in cids:
            if cid in by_id:
                return parse_pidf(by_id[cid])
        raise PidfError(f"Geolocation header names cid:{cids[0]} but no body part has that "
                        "Content-ID")
    for _, media_type, payload in parts:
        if media_type == "application/pidf+xml":
            return parse_pidf(payload)
    return None


def _bytes(body: str | bytes | None) -> bytes:
    if body is None:
        return b""
    data = body.encode("utf-8", "surrogateescape") if isinstance(body, str) else bytes(body)
    if len(data) > MAX_BODY:
        raise PidfError(f"body of {len(data)} bytes is larger than {MAX_BODY} bytes")
    return data


def _mime_parts(data: bytes, content_type: str | None) -> list[tuple[str | None, str, bytes]]:
    """(Content-ID, media type, decoded payload) of each leaf part of a multipart body."""
    if not content_type or not content_type.lower().lstrip().startswith("multipart/"):
        first = data.lstrip().split(b"\n", 1)[0].strip()
        boundary = first[2:].decode("ascii", "replace")
        if not boundary or not re.fullmatch(r"[0-9A-Za-z'()+_,\-./:=? ]{1,70}", boundary):
            raise PidfError("multipart body without a Content-Type has no usable boundary line")
        content_type = f'multipart/mixed; boundary="{boundary}"'
    if "\r" in content_type or "\n" in content_type or not content_type.isascii():
        raise PidfError("Content-Type header is malformed")
    message = email.message_from_bytes(
        b"Content-Type: " + content_type.encode("ascii") + b"\r\n\r\n" + data,
        policy=email.policy.compat32)
    if not message.is_multipart() or message.defects:
        boundary = message.get_boundary()
        if boundary is None:
            raise PidfError(f"Content-Type {content_type!r} has no boundary")
        problems = ", ".join(type(d).__name__ for d in message.defects) or "no parts"
        raise PidfError(f"multipart body does not match boundary {boundary!r} ({problems})")
    parts = []
    for part in message.walk():
        if part.is_multipart():
            continue
        cid = part.get("Content-ID")
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            payload = b""
        parts.append((cid.strip().strip("<>") if cid else None, part.get_content_type(),
                      payload))
    return parts


def parse_pidf(document: str | bytes) -> Location | None:
    """The location in a PIDF-LO document; None for presence without a location."""
    root = _parse_xml(_bytes(document))
    if root.tag != f"{{{PIDF}}}presence":
        raise PidfError(f"root element is {_local(root.tag)!r}, not a PIDF <presence>")
    return location_from_elements(element for info in root.iter(f"{{{GP}}}location-info")
                                  for element in info)


def location_from_elements(elements: Iterable[ET.Element]) -> Location | None:
    """The location described by shapes and civic addresses such as the children of a PIDF-LO
    <location-info> or of a LoST <location> (RFC 5222 uses the same GML and civic elements);
    None when none of them is one. The first shape and the first civic address count."""
    found: dict[str, object] = {}
    notes: list[str] = []
    for element in elements:
        _read_shape(element, found, notes)
    if not found and not notes:
        return None
    return Location(notes=tuple(notes), **found)  # type: ignore[arg-type]


def _parse_xml(data: bytes) -> ET.Element:
    """An element tree built by expat directly, so that a DOCTYPE is seen and refused."""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")

    def name(raw: str) -> str:
        return "{" + raw if "}" in raw else raw

    def refuse(*_args: object) -> None:
        raise PidfError("XML with a DOCTYPE is refused (no DTDs or entities in PIDF-LO)")

    parser.StartElementHandler = lambda tag, attrs: builder.start(
        name(tag), {name(k): v for k, v in attrs.items()})
    parser.EndElementHandler = lambda tag: builder.end(name(tag))
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    try:
        parser.Parse(data, True)
        return builder.close()
    except expat.ExpatError as exc:
        raise PidfError(f"not well-formed XML: {expat.ErrorString(exc.code)} "
                        f"at line {exc.lineno}, column {exc.offset}") from None
    except AssertionError:
        raise PidfError("not well-formed XML") from None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _key(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        namespace, local = tag[1:].split("}", 1)
        return namespace, local
    return "", tag


def _read_shape(element: ET.Element, found: dict[str, object], notes: list[str]) -> None:
    key = _key(element.tag)
    if key in CIVIC:
        if "country" not in found and "city" not in found and "postcode" not in found:
            _read_civic(element, found, notes)
        return
    if "lat" in found:
        return
    if key == (GML, "Point"):
        point = _pos(element, element)
    elif key in CENTRED:
        point = _pos(element.find(f"{{{GML}}}pos"), element)
        radius = element.find(f"{{{GS}}}radius")
        if key == (GS, "Circle") and radius is not None:
            found["radius_m"] = _radius(radius)
    elif key == (GML, "Polygon") or key == (GS, "Prism"):
        point = _centroid(element)
    else:
        return
    found["lat"], found["lon"] = point
    found["shape"] = key[1]


def _srs(shape: ET.Element) -> None:
    srs = shape.get("srsName")
    if srs is not None and not WGS84.fullmatch(srs.strip()):
        raise PidfError(f"{_local(shape.tag)} uses coordinate reference system {srs!r}; "
                        "only WGS84 (EPSG 4326 or 4979) is understood")


def _numbers(text: str | None, what: str) -> list[float]:
    try:
        values = [float(v) for v in (text or "").split()]
    except ValueError:
        raise PidfError(f"{what} {(text or '').strip()[:40]!r} is not a list of numbers") from None
    if not all(math.isfinite(v) for v in values):
        raise PidfError(f"{what} has a number that is not finite")
    return values


def _pos(pos: ET.Element | None, shape: ET.Element) -> tuple[float, float]:
    _srs(shape)
    if pos is not None and pos.tag != f"{{{GML}}}pos":
        pos = pos.find(f"{{{GML}}}pos")
    if pos is None:
        raise PidfError(f"{_local(shape.tag)} has no gml:pos")
    values = _numbers(pos.text, "gml:pos")
    if len(values) not in (2, 3):
        raise PidfError(f"gml:pos has {len(values)} numbers, not latitude longitude [height]")
    return _lat_lon(values[0], values[1])


def _lat_lon(lat: float, lon: float) -> tuple[float, float]:
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise PidfError(f"position ({lat}, {lon}) is not a latitude and longitude")
    return lat, lon


def _radius(element: ET.Element) -> float | None:
    values = _numbers(element.text, "gs:radius")
    if len(values) != 1 or values[0] < 0:
        raise PidfError("gs:radius must be one non-negative number")
    return values[0] if (element.get("uom") or "urn:ogc:def:uom:EPSG::9001") in METRES else None


def _centroid(shape: ET.Element) -> tuple[float, float]:
    """The centre of a polygon's outer ring (RFC 5491: gml:posList or a list of gml:pos)."""
    polygon = shape if shape.tag == f"{{{GML}}}Polygon" else shape.find(f".//{{{GML}}}Polygon")
    if polygon is None:
        raise PidfError(f"{_local(shape.tag)} has no gml:Polygon")
    _srs(shape)
    _srs(polygon)
    ring = polygon.find(f"{{{GML}}}exterior/{{{GML}}}LinearRing")
    if ring is None:
        raise PidfError("gml:Polygon has no exterior gml:LinearRing")
    pos_list = ring.find(f"{{{GML}}}posList")
    if pos_list is not None:
        values = _numbers(pos_list.text, "gml:posList")
        dim = 3 if pos_list.get("srsDimension") == "3" else 2
    else:
        rows = [_numbers(p.text, "gml:pos") for p in ring.findall(f"{{{GML}}}pos")]
        dim = len(rows[0]) if rows else 2
        if any(len(r) != dim for r in rows):
            raise PidfError("gml:pos elements of the ring differ in dimension")
        values = [v for r in rows for v in r]
    if dim not in (2, 3) or len(values) % dim or len(values) < 4 * dim:
        raise PidfError("gml:LinearRing needs at least 4 positions")
    points = [_lat_lon(values[i], values[i + 1]) for i in range(0, len(values), dim)]
    centre = shapely.Polygon([(lon, lat) for lat, lon in points]).centroid
    if centre.is_empty:
        raise PidfError("gml:Polygon has no area")
    return centre.y, centre.x


def _read_civic(element: ET.Element, found: dict[str, object], notes: list[str]) -> None:
    fields = {_local(child.tag): (child.text or "").strip() for child in element}
    country = fields.get("country", "").upper() or None
    found["country"] = country
    found["province"] = fields.get("A1") or None
    found["city"] = fields.get("A3") or fields.get("A2") or None
    raw = fields.get("PC")
    if not raw:
        return
    if country not in (None, "NL"):
        notes.append(f"civic postcode {raw[:12]!r} is in {country}, not the Netherlands")
        return
    pc4, reason = postcode_or_reason(raw)
    if pc4 is None:
        notes.append(f"civic {reason}")
    found["postcode"] = pc4
