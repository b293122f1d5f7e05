"""Public alerts as OASIS CAP 1.2 documents: an action's start is an Alert, its end an Update
(found, arrested, not found) or a Cancel (withdrawn) that references the Alert.

Public are the search actions and AMBER Alerts (suspect, vehicle, missing person, AMBER) once
started. Neighbourhood inquiries and preventive municipality messages are questions and
advice to participants, not alerts for signage or other systems, so they never appear; nor
does a draft. An ended action's last message stays public for CAP_KEEP_HOURS, so consumers
see the end; after that its documents are gone, and no old search stays online.

A message never changes once published: its identifier comes from the action and the moment
it started, its sent time is that start (Alert) or the end (Update, Cancel), so rendering it
again gives the same document. No personal data and no photo go in (photos are for
centralists only).
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session, joinedload

from core.geo import Circle, gaussian_radius
from core.models import Action, ActionKind, ActionStatus, Language, Outcome, Urgency
from core.settings import Settings
from core.targeting import LOCAL_TIME
from outbound.fanout import area_of
from outbound.templates import OUTCOMES
from routing.directory import boundary_index

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
CAP_MEDIA_TYPE = "application/cap+xml"
PUBLIC_KINDS = (ActionKind.SUSPECT, ActionKind.VEHICLE, ActionKind.MISSING_PERSON,
                ActionKind.AMBER)
IDENTIFIER = re.compile(r"burgernet-(\d{1,12})-(\d{8}T\d{6}Z)(?:-(update|cancel))?")
HEADLINE_MAX = 160
#: areaDesc names at most this many municipalities, then says how many more there are.
AREA_NAMES_MAX = 10
#: Points on the circle used to find the municipalities it touches (not published).
CIRCLE_POINTS = 72
LANGUAGES = (("nl-NL", False), ("en-GB", True))

# CAP 1.2, 3.2.2 value sets. "Security: law enforcement, military, homeland and local/private
# security" fits a suspect or vehicle sought by the police; "Rescue: rescue and recovery"
# fits a missing person and a missing child.
CATEGORY = {ActionKind.SUSPECT: "Security", ActionKind.VEHICLE: "Security",
            ActionKind.MISSING_PERSON: "Rescue", ActionKind.AMBER: "Rescue"}
EVENT = {ActionKind.SUSPECT: ("Burgernet: verdachte gezocht", "Burgernet: suspect sought"),
         ActionKind.VEHICLE: ("Burgernet: voertuig gezocht", "Burgernet: vehicle sought"),
         ActionKind.MISSING_PERSON: ("Burgernet: vermiste persoon",
                                     "Burgernet: missing person"),
         ActionKind.AMBER: ("AMBER Alert: vermist kind", "AMBER Alert: missing child")}
# "Immediate: responsive action SHOULD be taken immediately"; "Expected: ... soon (within
# next hour)"; an ended search is "Past: responsive action is no longer required".
URGENCY = {Urgency.URGENT: "Immediate", Urgency.NORMAL: "Expected"}
# A missing child or person: "Severe: significant threat to life or property"; a suspect or
# vehicle at large: "Moderate: possible threat to life or property".
SEVERITY = {ActionKind.SUSPECT: "Moderate", ActionKind.VEHICLE: "Moderate",
            ActionKind.MISSING_PERSON: "Severe", ActionKind.AMBER: "Severe"}
#: After the end: nothing to fear any more ("Minor"), except a subject not found ("Unknown").
ENDED_SEVERITY = {Outcome.FOUND: "Minor", Outcome.ARRESTED: "Minor",
                  Outcome.NOT_FOUND: "Unknown", Outcome.CANCELLED: "Minor"}
#: "AllClear: the subject event no longer poses a threat"; "None: no action recommended".
ENDED_RESPONSE = {Outcome.FOUND: "AllClear", Outcome.ARRESTED: "AllClear",
                  Outcome.NOT_FOUND: "None", Outcome.CANCELLED: "AllClear"}
ENDED_PREFIX = {Outcome.FOUND: ("Gevonden", "Found"), Outcome.ARRESTED: ("Aangehouden",
                                                                      "Arrested"),
                Outcome.NOT_FOUND: ("Zoekactie beëindigd", "Search ended"),
                Outcome.CANCELLED: ("Ingetrokken", "Withdrawn")}
CALL = ("Gezien? Bel gratis {number}.", "Seen anything? Call {number} free of charge.")
ENDED_DESCRIPTION = ("De actie is beëindigd: {outcome}.", "The action has ended: {outcome}.")
ENDED_INSTRUCTION = ("U hoeft niet meer uit te kijken. Bedankt voor uw hulp.",
                     "You no longer need to look out. Thank you for your help.")
NATIONAL = ("Nederland", "the Netherlands")
MORE = ("en {n} andere gemeenten", "and {n} other municipalities")
AROUND = ("Gebied rond {lat:.5f}, {lon:.5f}", "Area around {lat:.5f}, {lon:.5f}")
#: Characters XML 1.0 cannot carry at all (C0 controls except tab, LF, CR; U+FFFE/U+FFFF).
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


@dataclass(frozen=True)
class Message:
    """One CAP message about an action: its identifier, type, sent time and what it updates."""

    identifier: str
    msg_type: str
    sent: datetime
    references: Message | None = None


# --- which messages exist ------------------------------------------------------------------

def alert_message(action: Action) -> Message:
    """The Alert an action's start published."""
    if action.started_at is None:
        raise ValueError(f"action {action.id} has not started: it has no CAP message")
    started = action.started_at.astimezone(UTC)
    return Message(f"burgernet-{action.id}-{started:%Y%m%dT%H%M%SZ}", "Alert", started)


def end_message(action: Action) -> Message | None:
    """The Update (found, arrested, not found) or Cancel (withdrawn) its end published."""
    if action.status != ActionStatus.ENDED or action.ended_at is None:
        return None
    alert = alert_message(action)
    kind = "Cancel" if action.outcome == Outcome.CANCELLED else "Update"
    return Message(f"{alert.identifier}-{kind.lower()}", kind, action.ended_at.astimezone(UTC),
                   references=alert)


def messages(action: Action) -> list[Message]:
    end = end_message(action)
    return [alert_message(action)] + ([end] if end else [])


def latest_message(action: Action) -> Message:
    """What the feed shows for an action: its end once it has ended, else its Alert."""
    return end_message(action) or alert_message(action)


def keep_for(settings: Settings) -> timedelta:
    return timedelta(hours=settings.cap_keep_hours)


def public(now: datetime, keep: timedelta) -> ColumnElement[bool]:
    """Public actions: started search actions and AMBER Alerts, ended ones only for KEEP."""
    return and_(Action.kind.in_(PUBLIC_KINDS), Action.started_at.is_not(None),
                or_(Action.status == ActionStatus.ACTIVE,
                    and_(Action.status == ActionStatus.ENDED, Action.ended_at > now - keep)))


def public_actions(session: Session, now: datetime, keep: timedelta) -> Sequence[Action]:
    """The actions in the feed, most recently changed first (one indexed query)."""
    changed = func.coalesce(Action.ended_at, Action.started_at)
    return session.scalars(select(Action).where(public(now, keep))
                           .order_by(changed.desc(), Action.id.desc())).all()


def last_removal(session: Session, now: datetime, keep: timedelta) -> datetime | None:
    """When the feed last lost an entry: the latest end that has outlived KEEP."""
    ended = session.scalar(select(func.max(Action.ended_at)).where(
        Action.kind.in_(PUBLIC_KINDS), Action.status == ActionStatus.ENDED,
        Action.ended_at <= now - keep))
    return None if ended is None else ended.astimezone(UTC) + keep


def find_message(session: Session, identifier: str, now: datetime,
                 keep: timedelta) -> tuple[Action, Message] | None:
    """The public action and message with IDENTIFIER, or None (unknown, draft, not public,
    or ended longer than KEEP ago)."""
    match = IDENTIFIER.fullmatch(identifier)
    if match is None:
        return None
    action = session.scalar(select(Action).options(joinedload(Action.organisation))
                            .where(Action.id == int(match[1]), public(now, keep)))
    if action is None:
        return None
    return next(((action, m) for m in messages(action) if m.identifier == identifier), None)


# --- the document ----------------------------------------------------------------------------

def cap_time(moment: datetime) -> str:
    """CAP's date-time (3.3.2): local time with its offset, no fraction, never "Z" (UTC
    itself is written -00:00)."""
    text = moment.astimezone(LOCAL_TIME).replace(microsecond=0).isoformat()
    return text[:-6] + "-00:00" if text.endswith("+00:00") else text


def alert_document(session: Session, action: Action, message: Message,
                   settings: Settings) -> bytes:
    """The CAP 1.2 <alert> for MESSAGE about ACTION, as UTF-8 XML."""
    root = ET.Element(_q("alert"))
    for name, value in (("identifier", message.identifier), ("sender", settings.cap_sender),
                        ("sent", cap_time(message.sent)), ("status", settings.cap_status),
                        ("msgType", message.msg_type), ("scope", "Public")):
        _add(root, name, value)
    if message.references is not None:
        earlier = message.references
        _add(root, "references",
             f"{settings.cap_sender},{earlier.identifier},{cap_time(earlier.sent)}")
    area = describe_area(session, action)
    for language, english in LANGUAGES:
        if english and not has_english(action):
            continue
        _info(root, action, message, settings, area, language, english)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True, default_namespace=CAP_NS)


def has_english(action: Action) -> bool:
    return any((action.title_en, action.description_en, action.instruction_en))


def headline(action: Action, message: Message, english: bool = False) -> str:
    """At most 160 characters (CAP 1.2, 3.2.2): the title, prefixed by the outcome once ended."""
    title = _text(action, "title", english)
    if message.msg_type != "Alert" and action.outcome is not None:
        title = f"{ENDED_PREFIX[action.outcome][english]}: {title}"
    title = _clean(title)
    return title if len(title) <= HEADLINE_MAX else title[:HEADLINE_MAX - 1].rstrip() + "…"


def description(action: Action, message: Message, english: bool = False) -> str:
    """The action's description; once ended, how it ended and the centralist's result text."""
    if message.msg_type == "Alert":
        return _clean(_text(action, "description", english))
    language = Language.EN if english else Language.NL
    outcome = OUTCOMES[language][(action.outcome or Outcome.CANCELLED).value]
    ended = ENDED_DESCRIPTION[english].format(outcome=outcome)
    return _clean(" ".join(filter(None, (ended, action.outcome_text))))


def _info(root: ET.Element, action: Action, message: Message, settings: Settings,
          area: Area, language: str, english: bool) -> None:
    kind, ended = ActionKind(action.kind), message.msg_type != "Alert"
    outcome = Outcome(action.outcome) if ended and action.outcome else None
    info = _add(root, "info")
    _add(info, "language", language)
    _add(info, "category", CATEGORY[kind])
    _add(info, "event", EVENT[kind][english])
    _add(info, "responseType", ENDED_RESPONSE[outcome] if outcome else "Monitor")
    _add(info, "urgency", "Past" if ended else URGENCY[Urgency(action.urgency)])
    _add(info, "severity", ENDED_SEVERITY[outcome] if outcome else SEVERITY[kind])
    _add(info, "certainty", "Observed")
    _pair(info, "eventCode", "Burgernet", kind.value)
    if ended:
        _add(info, "expires", cap_time(message.sent + keep_for(settings)))
    _add(info, "senderName", f"Burgernet, {action.organisation.name}")
    _add(info, "headline", headline(action, message, english))
    _optional(info, "description", description(action, message, english))
    instruction = (ENDED_INSTRUCTION[english] if ended else " ".join(filter(None, (
        _text(action, "instruction", english),
        CALL[english].format(number=settings.free_number)))))
    _add(info, "instruction", _clean(instruction))
    _add(info, "web", f"{settings.public_url}/")
    _add(info, "contact", settings.free_number)
    if kind == ActionKind.AMBER:
        _pair(info, "parameter", "AMBER", "national" if action.national else "regional")
    if outcome is not None:
        _pair(info, "parameter", "BurgernetOutcome", outcome.value)
    _area(info, area, english)


def _text(action: Action, field: str, english: bool) -> str:
    """English falls back to Dutch field by field, as the outbound messages do."""
    value = getattr(action, f"{field}_en") if english else None
    return (value or getattr(action, f"{field}_nl") or "").strip()


def _clean(text: str) -> str:
    return NOT_XML.sub("", text).strip()


def _q(name: str) -> str:
    return f"{{{CAP_NS}}}{name}"


def _add(parent: ET.Element, name: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, _q(name))
    element.text = text
    return element


def _optional(parent: ET.Element, name: str, text: str) -> None:
    """An optional element, left out when it would be empty."""
    if text:
        _add(parent, name, text)


def _pair(parent: ET.Element, name: str, value_name: str, value: str) -> None:
    element = _add(parent, name)
    _add(element, "valueName", value_name)
    _add(element, "value", value)


# --- the area --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Area:
    """An action's area in CAP's terms: circles or polygons, and the municipalities it touches."""

    circles: tuple[str, ...]
    polygons: tuple[str, ...]
    municipalities: tuple[str, ...]
    national: bool
    centre: tuple[float, float]


def describe_area(session: Session, action: Action) -> Area:
    """The action's validated area as CAP circles or polygons (WGS 84, "lat,lon"), with the
    names of the municipalities it touches."""
    area = area_of(action)
    geometry: BaseGeometry
    circles: tuple[str, ...]
    polygons: tuple[str, ...]
    if isinstance(area, Circle):
        geometry = shapely.Polygon(circle_ring(area.lat, area.lon, area.radius_m))
        circles = (f"{area.lat:.5f},{area.lon:.5f} {area.radius_m / 1000:.3f}",)
        polygons = ()
    else:
        geometry = area.geometry
        circles, polygons = (), tuple(cap_polygons(area.geojson))
    index = boundary_index(session)
    hits: Iterable[int] = ([] if action.national
                           else index.tree.query(geometry, predicate="intersects"))
    names = tuple(sorted({index.places[int(i)].municipality for i in hits}))
    point = geometry.representative_point()
    return Area(circles, polygons, names, bool(action.national), (point.y, point.x))


def cap_polygons(geojson: dict[str, Any]) -> list[str]:
    """One CAP polygon per part of a GeoJSON (Multi)Polygon: its outer ring as "lat,lon"
    pairs, closed. CAP has no holes, so a hole is covered (the area errs on the large side)."""
    coordinates = geojson["coordinates"]
    parts = [coordinates] if geojson["type"] == "Polygon" else coordinates
    result = []
    for rings in parts:
        pairs = [f"{lat:.5f},{lon:.5f}" for lon, lat, *_ in rings[0]]
        if pairs[0] != pairs[-1]:
            pairs.append(pairs[0])
        result.append(" ".join(pairs))
    return result


def circle_ring(lat: float, lon: float, radius_m: float,
                points: int = CIRCLE_POINTS) -> list[tuple[float, float]]:
    """The circle as a closed ring of (lon, lat) on the sphere the targeting uses."""
    angle = radius_m / gaussian_radius(lat)
    phi, lam = math.radians(lat), math.radians(lon)
    ring = []
    for step in range(points):
        bearing = 2 * math.pi * step / points
        phi2 = math.asin(math.sin(phi) * math.cos(angle)
                         + math.cos(phi) * math.sin(angle) * math.cos(bearing))
        lam2 = lam + math.atan2(math.sin(bearing) * math.sin(angle) * math.cos(phi),
                                math.cos(angle) - math.sin(phi) * math.sin(phi2))
        ring.append((math.degrees(lam2), math.degrees(phi2)))
    return ring + ring[:1]


def area_description(area: Area, english: bool) -> str:
    """areaDesc: the country, else the municipalities touched (at most ten by name)."""
    if area.national:
        return NATIONAL[english]
    if not area.municipalities:
        return AROUND[english].format(lat=area.centre[0], lon=area.centre[1])
    names = ", ".join(area.municipalities[:AREA_NAMES_MAX])
    rest = len(area.municipalities) - AREA_NAMES_MAX
    return f"{names} {MORE[english].format(n=rest)}" if rest > 0 else names


def _area(info: ET.Element, area: Area, english: bool) -> None:
    element = _add(info, "area")
    _add(element, "areaDesc", area_description(area, english))
    for polygon in area.polygons:
        _add(element, "polygon", polygon)
    for circle in area.circles:
        _add(element, "circle", circle)
