"""LoST (RFC 5222): which meldkamer answers for a location, as a standard service for SIP
proxies and ESRPs.

A request is a <findService>, <listServices>, <listServicesByLocation> or
<getServiceBoundary> document, sent as application/lost+xml (Section 14). It is checked
against the RFC's Relax NG schema (routing/schemas), its location is read by the same shape
reader as a PIDF-LO, and the route is decided by `resolve`, as for the IVR and
`burgernet route`. Every answer is a LoST document: what cannot be answered is one of the
RFC's <errors> (Section 13.1), never an exception.

The one service is urn:service:sos.police (RFC 5031): the Burgernet line of the police
meldkamer for the place. What decided the route travels in an extension element of our own
namespace after <path> (the schema's extension point); a point abroad that counts for the
nearest Dutch municipality also gets a <defaultMappingReturned> warning (Section 13.2).
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lxml import etree
from sqlalchemy.orm import Session

from routing.directory import Place
from routing.lost_location import LOST_NS, LostError, Mapped, local_name, map_location
from routing.resolve import RouteDecision

#: Our extension element with what decided the route; an identifier, never fetched.
ROUTING_NS = "https://burgernet.example.org/ns/lost-routing/1"
MEDIA_TYPE = "application/lost+xml"
SCHEMA = Path(__file__).parent / "schemas" / "lost.rng"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
MAX_BODY = 64 * 1024
#: Service URNs answered here (RFC 5031).
SERVICES = ("urn:service:sos.police",)
#: The schema's "LoST application unique string" (Section 4): a domain name.
APP_UNIQUE = re.compile(r"([a-zA-Z0-9\-]+\.)+[a-zA-Z0-9]+")
#: The municipal division of the reference data (core/data/README.md) and so of every mapping.
DIVISION_DATE = datetime(2023, 1, 1, tzinfo=UTC)
REQUESTS = ("findService", "listServices", "listServicesByLocation", "getServiceBoundary")


@dataclass(frozen=True)
class LostConfig:
    """Who we are and what a mapping carries: SOURCE names this server in 'source' and
    <via>; SERVICE_NUMBER is the dial string of the free number; a mapping is valid for TTL."""

    source: str
    national_fallback: str
    service_number: str | None = None
    ttl: timedelta = timedelta(hours=1)
    last_updated: datetime = DIVISION_DATE


def answer(session: Session, body: bytes, content_type: str | None, now: datetime,
           config: LostConfig) -> bytes:
    """The LoST answer (a UTF-8 document) to a request BODY of CONTENT_TYPE at NOW."""
    try:
        request = parse_request(body, content_type)
        _check_loop(request, config.source)
        return _HANDLERS[local_name(request.tag)](session, request, now, config)
    except LostError as exc:
        return error_document(config.source, exc)


def parse_request(body: bytes, content_type: str | None) -> Any:
    """The root element of a LoST request that the schema accepts; LostError (badRequest)
    says what is wrong otherwise."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != MEDIA_TYPE:
        raise LostError("badRequest", f"Content-Type must be {MEDIA_TYPE} (RFC 5222, "
                                      f"Section 14), not {media or 'none'}")
    if len(body) > MAX_BODY:
        raise LostError("badRequest", f"request is larger than {MAX_BODY} bytes")
    tree = _parse(body)
    root = tree.getroot()
    if not root.tag.startswith(f"{{{LOST_NS}}}"):
        raise LostError("badRequest", f"root element <{local_name(root.tag)}> is not in the LoST "
                                      f"namespace {LOST_NS}")
    validator = _validator()
    if not validator.validate(tree):
        error = validator.error_log.last_error
        raise LostError("badRequest", f"not valid against the RFC 5222 schema: {error.message} "
                                      f"(line {error.line})")
    if local_name(root.tag) not in REQUESTS:
        raise LostError("badRequest", f"<{local_name(root.tag)}> is an answer, not a request")
    return root


def error_document(source: str, error: LostError) -> bytes:
    """<errors> with one error element (RFC 5222, Section 13.1)."""
    root = etree.Element(_lost("errors"), nsmap={None: LOST_NS}, source=source)
    etree.SubElement(root, _lost(error.kind), {**error.attributes,
                                               "message": _text(error.message), XML_LANG: "en"})
    return _serialise(root)


def internal_error(source: str) -> bytes:
    """The answer when something failed inside (the cause goes to the log, not the client)."""
    return error_document(source, LostError("internalError", "the server could not answer; "
                                                             "the cause is in its log"))


def source_for(public_url: str) -> str:
    """This server's LoST application unique string: the host of PUBLIC_URL when it is a
    dotted name or address, else localhost.localdomain."""
    host = urlsplit(public_url).hostname or ""
    return host if APP_UNIQUE.fullmatch(host) else "localhost.localdomain"


def dial_string(number: str) -> str | None:
    """The digits a user dials for NUMBER ("0800-0011" → "08000011"); None when it is not
    made of digits, * and # (RFC 5222, Section 5.7)."""
    digits = re.sub(r"[\s\-./()]", "", number)
    return digits if re.fullmatch(r"[0-9*#]+", digits) else None


# --- requests -------------------------------------------------------------------------------

def _find_service(session: Session, request: Any, now: datetime, config: LostConfig) -> bytes:
    service = request.findtext(_lost("service"))
    if service is None:
        raise LostError("badRequest", "a <findService> needs a <service>")
    service = service.strip()
    if service.lower() not in SERVICES:
        raise LostError("serviceNotImplemented", f"{service} is not mapped here; this server "
                                                 f"maps {' '.join(SERVICES)} only")
    mapped = map_location(session, request, now, national_fallback=config.national_fallback)
    root = etree.Element(_lost("findServiceResponse"), nsmap={None: LOST_NS})
    _mapping(root, service, mapped.decision, now, config)
    if mapped.civic is not None and _true(request.get("validateLocation")):
        _validation(root, mapped.civic)
    place = mapped.decision.place
    assert place is not None
    if place.distance_m > 0:
        warnings = etree.SubElement(root, _lost("warnings"), source=config.source)
        etree.SubElement(warnings, _lost("defaultMappingReturned"), {
            "message": _text(f"{mapped.what} lies {place.describe()}"), XML_LANG: "en"})
    _path(root, request, config.source)
    _reason(root, mapped)
    etree.SubElement(root, _lost("locationUsed"), id=mapped.location_id)
    return _serialise(root)


def _list_services(session: Session, request: Any, now: datetime, config: LostConfig) -> bytes:
    root = etree.Element(_lost("listServicesResponse"), nsmap={None: LOST_NS})
    etree.SubElement(root, _lost("serviceList")).text = " ".join(_listed(request))
    _path(root, request, config.source)
    return _serialise(root)


def _list_by_location(session: Session, request: Any, now: datetime,
                      config: LostConfig) -> bytes:
    services = _listed(request)
    mapped = map_location(session, request, now, national_fallback=config.national_fallback)
    root = etree.Element(_lost("listServicesByLocationResponse"), nsmap={None: LOST_NS})
    etree.SubElement(root, _lost("serviceList")).text = " ".join(services)
    _path(root, request, config.source)
    etree.SubElement(root, _lost("locationUsed"), id=mapped.location_id)
    return _serialise(root)


def _service_boundary(session: Session, request: Any, now: datetime,
                      config: LostConfig) -> bytes:
    raise LostError("notFound", f"no service boundary has key {request.get('key')}; this "
                                "server hands out no boundary references")


_HANDLERS: dict[str, Callable[[Session, Any, datetime, LostConfig], bytes]] = {
    "findService": _find_service, "listServices": _list_services,
    "listServicesByLocation": _list_by_location, "getServiceBoundary": _service_boundary}


def _listed(request: Any) -> list[str]:
    """The services below the requested one (Sections 10 and 11), or all without one."""
    service = request.findtext(_lost("service"))
    if service is None:
        return list(SERVICES)
    wanted = service.strip().lower()
    below = [s for s in SERVICES if s.startswith(wanted + ".")]
    if not below and wanted not in SERVICES:
        raise LostError("serviceNotImplemented", f"{service.strip()} is not mapped here; this "
                                                 f"server maps {' '.join(SERVICES)} only")
    return below


def _check_loop(request: Any, source: str) -> None:
    for via in request.iterfind(f"{_lost('path')}/{_lost('via')}"):
        if via.get("source", "").lower() == source.lower():
            raise LostError("loop", f"{source} is already in the request's <path>")


# --- answers --------------------------------------------------------------------------------

def _mapping(root: Any, service: str, decision: RouteDecision, now: datetime,
             config: LostConfig) -> None:
    uris = [uri for uri in (decision.sip_uri, f"tel:{decision.phone}" if decision.phone else "")
            if uri]
    if not uris:
        raise LostError("internalError", f"meldkamer {decision.meldkamer_code} has no SIP URI "
                                         "or number configured")
    key = "|".join([service.lower(), decision.meldkamer_code, *uris, config.service_number or ""])
    mapping = etree.SubElement(root, _lost("mapping"), {
        "expires": _time(now + config.ttl), "lastUpdated": _time(config.last_updated),
        "source": config.source, "sourceId": hashlib.sha256(key.encode()).hexdigest()[:32]})
    names = {"nl": f"{decision.meldkamer_name} (Burgernet)",
             "en": f"{decision.meldkamer_name}, regional dispatch centre (Burgernet)"}
    for language, name in names.items():
        etree.SubElement(mapping, _lost("displayName"), {XML_LANG: language}).text = name
    etree.SubElement(mapping, _lost("service")).text = service
    for uri in uris:
        etree.SubElement(mapping, _lost("uri")).text = uri
    if config.service_number:
        etree.SubElement(mapping, _lost("serviceNumber")).text = config.service_number


def _validation(root: Any, civic: Any) -> None:
    """Which civic elements decided the mapping (Section 8.4.2): the country and postcode."""
    labels = list(dict.fromkeys(local_name(child.tag) for child in civic))
    valid = [label for label in labels if label in ("country", "PC")]
    unchecked = [label for label in labels if label not in valid]
    validation = etree.SubElement(root, _lost("locationValidation"))
    etree.SubElement(validation, _lost("valid")).text = " ".join(valid)
    if unchecked:
        etree.SubElement(validation, _lost("unchecked")).text = " ".join(unchecked)


def _path(root: Any, request: Any, source: str) -> None:
    """The request's <path> with this server added (Section 6)."""
    path = etree.SubElement(root, _lost("path"))
    for via in request.iterfind(f"{_lost('path')}/{_lost('via')}"):
        etree.SubElement(path, _lost("via"), source=via.get("source"))
    etree.SubElement(path, _lost("via"), source=source)


def _reason(root: Any, mapped: Mapped) -> None:
    """What decided the route, for people and logs: resolve's reason and the place."""
    place: Place | None = mapped.decision.place
    assert place is not None
    attributes = {"reason": mapped.decision.reason, "meldkamer": mapped.decision.meldkamer_code,
                  "municipality": place.municipality, "municipalityCode": place.municipality_code,
                  "safetyRegion": place.region, XML_LANG: "en"}
    if place.pc4:
        attributes["postcode"] = place.pc4
    if place.distance_m > 0:
        attributes["distance"] = f"{place.distance_m:.0f}"
    element = etree.SubElement(root, f"{{{ROUTING_NS}}}routing", attributes,
                               nsmap={"bn": ROUTING_NS})
    element.text = _text("; ".join([f"{mapped.what} lies {place.describe()}", *mapped.notes]))


# --- XML ------------------------------------------------------------------------------------

_local_state = threading.local()


def _validator() -> etree.RelaxNG:
    """The schema, compiled once per thread (a validator keeps its error log)."""
    validator = getattr(_local_state, "validator", None)
    if validator is None:
        validator = etree.RelaxNG(etree.parse(str(SCHEMA)))
        _local_state.validator = validator
    return validator


def _parse(body: bytes) -> Any:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             remove_comments=True, remove_pis=True)
    try:
        tree = etree.parse(io.BytesIO(body), parser)
    except etree.XMLSyntaxError as exc:
        raise LostError("badRequest", f"not well-formed XML: {exc.msg}") from None
    if tree.docinfo.doctype:
        raise LostError("badRequest", "XML with a DOCTYPE is refused (no DTDs or entities)")
    return tree


def _serialise(root: Any) -> bytes:
    body: bytes = etree.tostring(root, encoding="UTF-8", pretty_print=True)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body


def _lost(name: str) -> str:
    return f"{{{LOST_NS}}}{name}"


def _true(value: str | None) -> bool:
    return (value or "").strip() in ("true", "1")


def _time(moment: datetime) -> str:
    """xsd:dateTime in UTC with 'Z', as Section 5.1 asks."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(text: str) -> str:
    """TEXT as an attribute or element value: XML characters only, one line, bounded."""
    text = re.sub(r"[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]", "?", text)
    return " ".join(text.split())[:500]
