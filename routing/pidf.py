"""The caller's location from a SIP INVITE: the Geolocation header (RFC 6442) and PIDF-LO.

PIDF-LO (RFC 4119) carries a geodetic shape in the GML profile of RFC 5491 (read by
routing.geoshape) and/or a civic address (RFC 5139, or the civicLoc format of RFC 4119). An
INVITE that conveys a location by value has a multipart/mixed body with the SDP and an
application/pidf+xml part whose Content-ID the Geolocation header names as a cid: URI. A
location by reference (an https: or sip: URI) would need a dereference protocol we do not
speak, so it counts as none. A document with several <device>, <tuple> and <person> elements is
read as RFC 5491's Rule 8 says: the first device with a location, else the first tuple, a
person last.

Bodies come from the network: XML with a DOCTYPE (and so any entity declaration) is
refused, and anything that cannot be read raises PidfError with the reason.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import unquote
from xml.etree import ElementTree as ET
from xml.parsers import expat

from routing.geoshape import PidfError as PidfError
from routing.geoshape import key, read_shape
from routing.postcode import postcode_or_reason

PIDF = "urn:ietf:params:xml:ns:pidf"
GP = "urn:ietf:params:xml:ns:pidf:geopriv10"
CA = "urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr"
#: The civic format of the original RFC 4119, before RFC 5139 replaced it.
CL = "urn:ietf:params:xml:ns:pidf:geopriv10:civicLoc"

MAX_BODY = 64 * 1024
PIDF_TYPES = {"application/pidf+xml", "application/xml", "text/xml"}
CIVIC = {(CA, "civicAddress"), (CL, "civicAddress")}
LOCATION_INFO = (GP, "location-info")
#: RFC 5491 Rule 8: devices first, then tuples, persons only as a last resort.
PRIORITY = {"device": 0, "tuple": 1, "person": 2}
BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
#: A part without headers whose body starts with them: RFC 6442's examples put a blank line
#: between the boundary and the part headers.
HEADERS_IN_BODY = re.compile(rb"\s*Content-(?:Type|ID)\s*:", re.IGNORECASE)


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
    elif media in PIDF_TYPES or (not media and _looks_like_xml(start)):
        return parse_pidf(body if isinstance(body, str) else data)
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
    data = _encoded(body) if isinstance(body, str) else bytes(body)
    if len(data) > MAX_BODY:
        raise PidfError(f"body of {len(data)} bytes is larger than {MAX_BODY} bytes")
    return data


def _encoded(text: str) -> bytes:
    """TEXT as UTF-8; bytes smuggled in as lone surrogates (surrogateescape) come back as they
    were, any other lone surrogate as bytes that are not UTF-8, which the XML parser refuses."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _looks_like_xml(start: bytes) -> bool:
    """Whether a body starts like an XML document, after any byte order mark (UTF-8 or -16)."""
    return start.startswith(BOMS[1:]) or start.removeprefix(BOMS[0]).lstrip().startswith(b"<")


def _mime_parts(data: bytes, content_type: str | None) -> list[tuple[str | None, str, bytes]]:
    """(Content-ID, media type, decoded payload) of each leaf part of a multipart body."""
    if not content_type or not content_type.lower().lstrip().startswith("multipart/"):
        first = data.lstrip().split(b"\n", 1)[0].strip()
        line = first[2:].decode("ascii", "replace")
        if not line or not re.fullmatch(r"[0-9A-Za-z'()+_,\-./:=? ]{1,70}", line):
            raise PidfError("multipart body without a Content-Type has no usable boundary line")
        content_type = f'multipart/mixed; boundary="{line}"'
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
        part, payload = headed_part(part)
        cid = part.get("Content-ID")  # a Header, not a str, when it has a non-ASCII byte
        parts.append((str(cid).strip().strip("<>") if cid else None, part.get_content_type(),
                      payload))
    return parts


def headed_part(part: Message) -> tuple[Message, bytes]:
    """PART of a multipart body and its decoded payload; for a part without headers whose body
    starts with a Content-Type or Content-ID line, as RFC 6442's examples print it (a blank line
    after the boundary, none after the headers), those lines as its headers, the rest as body."""
    payload = part.get_payload(decode=True)
    payload = payload if isinstance(payload, bytes) else b""
    if part.keys() or not HEADERS_IN_BODY.match(payload):
        return part, payload
    inner = email.message_from_bytes(payload.lstrip(), policy=email.policy.compat32)
    if inner.is_multipart():
        return part, payload
    data = inner.get_payload(decode=True)
    return inner, data if isinstance(data, bytes) else b""


def parse_pidf(document: str | bytes) -> Location | None:
    """The location in a PIDF-LO document; None for presence without a location. A document
    given as str is that text: its XML encoding declaration does not apply."""
    if isinstance(document, str):
        root = _parse_xml(_bytes(document), encoding="UTF-8")
    else:
        root = _parse_xml(_bytes(document))
    if key(root.tag) != (PIDF, "presence"):
        raise PidfError(f"root element is {key(root.tag)[1]!r}, not a PIDF <presence>")
    return _by_priority(root)


def location_from_elements(elements: Iterable[Any]) -> Location | None:
    """The location described by shapes and civic addresses such as the children of a PIDF-LO
    <location-info> or of a LoST <location> (RFC 5222 uses the same GML and civic elements);
    None when none of them is one. The first shape and the first civic address count."""
    found: dict[str, object] = {}
    notes: list[str] = []
    for element in elements:
        _read(element, found, notes)
    if not found and not notes:
        return None
    return Location(notes=tuple(notes), **found)  # type: ignore[arg-type]


def _by_priority(root: ET.Element) -> Location | None:
    """The location of the first element (Rule 8 order) that gives a point, a postcode or a
    city; else the first that gives any. One that cannot be read is passed over with a note,
    and its error raised when no other gives a location."""
    fallback: Location | None = None
    skipped: list[tuple[str, PidfError]] = []
    for holder in sorted(_holders(root), key=lambda e: PRIORITY.get(key(e.tag)[1], 1)):
        elements = [e for info in holder.iter() if key(info.tag) == LOCATION_INFO for e in info]
        try:
            location = location_from_elements(elements)
        except PidfError as exc:
            skipped.append((_describe(holder), exc))
            continue
        if location is not None and _routable(location):
            return _noted(location, skipped)
        fallback = fallback or location
    if fallback is not None:
        return _noted(fallback, skipped)
    if skipped:
        raise skipped[0][1]
    return None


def _holders(root: ET.Element) -> list[ET.Element]:
    return [e for e in root if any(key(i.tag) == LOCATION_INFO for i in e.iter())]


def _describe(holder: ET.Element) -> str:
    name, ident = key(holder.tag)[1], holder.get("id")
    return f"{name} {ident[:40]!r}" if ident else name


def _routable(location: Location) -> bool:
    return location.has_point or location.postcode is not None or location.city is not None


def _noted(location: Location, skipped: list[tuple[str, PidfError]]) -> Location:
    notes = tuple(f"{where} ignored: {exc}" for where, exc in skipped)
    return dataclasses.replace(location, notes=notes + location.notes) if notes else location


def _parse_xml(data: bytes, encoding: str | None = None) -> ET.Element:
    """An element tree built by expat directly, so that a DOCTYPE is seen and refused.
    ENCODING, when given, overrides the document's own declaration."""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(encoding, namespace_separator="}")

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
    if not data.startswith(BOMS):
        data = data.lstrip(b" \t\r\n")
    try:
        parser.Parse(data, True)
        return builder.close()
    except expat.ExpatError as exc:
        raise PidfError(f"not well-formed XML: {expat.ErrorString(exc.code)} "
                        f"at line {exc.lineno}, column {exc.offset}") from None
    except AssertionError:
        raise PidfError("not well-formed XML") from None


def _read(element: Any, found: dict[str, object], notes: list[str]) -> None:
    if key(element.tag) in CIVIC:
        if "country" not in found and "city" not in found and "postcode" not in found:
            _read_civic(element, found, notes)
        return
    if "lat" in found:
        return
    shape = read_shape(element)
    if shape is None:
        return
    found.update(lat=shape.lat, lon=shape.lon, shape=shape.name)
    if shape.radius_m is not None:
        found["radius_m"] = shape.radius_m


def _read_civic(element: Any, found: dict[str, object], notes: list[str]) -> None:
    fields = {key(child.tag)[1]: (child.text or "").strip() for child in element}
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
