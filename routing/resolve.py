"""The routing decision: which meldkamer an inbound caller on the free number is put through to.

In order of trust: (a) the action the caller was sent recently, since that is almost always
why they call; (b) where the caller is: a PIDF-LO from the network, coordinates given with
the call, then the participant's registered places (a current place that has not expired,
home, work); (c) the postcode they keyed; (d) the national fallback. Every hint that was
given but could not be used is named in the decision's detail, for the call record.

Bad input never raises: a caller must always get through to someone. Only a configuration
error (a national fallback that is not in the database) does.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Row, and_, bindparam, func, or_, select
from sqlalchemy.orm import Session

from core.errors import ConfigError
from core.models import (
    Action,
    ActionStatus,
    Channel,
    Delivery,
    DeliveryStatus,
    LocationKind,
    Participant,
    ParticipantLocation,
)
from routing.caller import is_withheld, parse_caller
from routing.directory import (
    MeldkamerInfo,
    Place,
    UnknownPlace,
    meldkamer,
    meldkamer_by_id,
    place_at_point,
    place_by_name,
    place_for_postcode,
)
from routing.pidf import PidfError, location_from_body, parse_geolocation_header
from routing.postcode import postcode_or_reason

#: The note for a call without a caller number (a LoST query never has one).
NO_CALLER = "no caller number"
REASONS = ("action", "pidf", "coordinates", "participant_location", "postcode",
           "national_fallback", "fallback")
#: Statuses of a delivery that actually left us (as outbound.feedback counts "reached").
SENT = (DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.ANSWERED,
        DeliveryStatus.VOICEMAIL)
#: The action of the newest message that went out to a participant, if it is still active or
#: ended recently. Served by the index on delivery.participant_id; a participant has at most a
#: few hundred deliveries, sorted in memory.
_LATEST_ACTION = (
    select(Delivery.action_id, Delivery.channel, Action.status, Action.meldkamer_id)
    .join(Action, Action.id == Delivery.action_id)
    .where(Delivery.participant_id == bindparam("participant_id"), Delivery.status.in_(SENT),
           or_(Action.status == ActionStatus.ACTIVE,
               and_(Action.status == ActionStatus.ENDED,
                    Action.ended_at >= bindparam("ended_since", type_=Action.ended_at.type))))
    .order_by(func.coalesce(Delivery.sent_at, Delivery.created_at).desc(), Delivery.id.desc())
    .limit(1))
_PARTICIPANT_BY_PHONE = select(Participant.id).where(Participant.phone == bindparam("phone"))
_LOCATIONS = (
    select(ParticipantLocation.kind, ParticipantLocation.lat, ParticipantLocation.lon,
           ParticipantLocation.expires_at, ParticipantLocation.id)
    .where(ParticipantLocation.participant_id == bindparam("participant_id")))
PLACE_ORDER = {LocationKind.CURRENT: 0, LocationKind.HOME: 1, LocationKind.WORK: 2}


@dataclass(frozen=True)
class RouteRequest:
    """Everything known about an inbound call; every field is raw and may be wrong.

    PIDF is a bare PIDF-LO document or the whole INVITE body (CONTENT_TYPE is then the
    INVITE's Content-Type). CALLED is carried for the call record; with one national number
    it does not change the route. CALLER_NATIONAL is the country (ISO code) whose national
    format the transport's caller IDs may come in ("0612345678"); None when the transport
    sends international numbers only, as Twilio does (see `routing.caller`).
    """

    caller: str | None = None
    caller_national: str | None = None
    called: str | None = None
    lat: float | None = None
    lon: float | None = None
    postcode: str | None = None
    pidf: str | bytes | None = None
    content_type: str | None = None
    geolocation_header: str | None = None


@dataclass(frozen=True)
class RouteDecision:
    """Where the call goes and why: REASON is one of REASONS, DETAIL is for the log.

    PLACE is the municipality that decided a route by location (pidf, coordinates,
    participant_location, postcode); NOTES are the hints that were given but could not be
    used (they end DETAIL too).
    """

    meldkamer_code: str
    meldkamer_name: str
    phone: str
    sip_uri: str
    fallback_code: str | None
    reason: str
    detail: str
    action_id: int | None
    participant_id: int | None
    caller: str | None
    place: Place | None = None
    notes: tuple[str, ...] = ()


@dataclass
class _Trail:
    caller: str | None = None
    participant_id: int | None = None
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.notes.append(text)


def resolve(session: Session, request: RouteRequest, now: datetime, *,
            national_fallback: str, recent: timedelta = timedelta(hours=6)) -> RouteDecision:
    """Decide which meldkamer takes the call described by REQUEST at NOW (aware, UTC).

    An action counts when it is still active, or ended less than RECENT ago, and one of its
    messages actually went out to the caller.
    """
    trail = _Trail()
    trail.caller = _caller(request.caller, request.caller_national, trail)
    if trail.caller is not None:
        trail.participant_id = session.scalar(_PARTICIPANT_BY_PHONE,
                                              {"phone": trail.caller})
        if trail.participant_id is None:
            trail.note("caller is not a registered participant")
        elif decision := _by_action(session, trail, now, recent):
            return decision
    steps = (("pidf", _by_pidf), ("coordinates", _by_coordinates),
             ("participant_location", _by_participant), ("postcode", _by_postcode))
    for reason, step in steps:
        found = step(session, request, trail, now)
        if found is not None:
            place, text = found
            return _decision(session, meldkamer(session, place.meldkamer_code), reason, text,
                             trail, place=place)
    fallback = meldkamer(session, national_fallback)
    if fallback is None:
        raise ConfigError(f"national fallback {national_fallback!r} is not a meldkamer in the "
                          "database; load the reference data")
    return _decision(session, fallback, "national_fallback",
                     f"no usable action or location; national fallback {fallback.code}", trail)


def recent_action(session: Session, participant_id: int, now: datetime,
                  recent: timedelta = timedelta(hours=6)) -> int | None:
    """The id of the action whose message most recently went out to the participant, if it
    is still active or ended less than RECENT before NOW (as `resolve` uses it)."""
    row = _latest_action(session, participant_id, now, recent)
    return None if row is None else row[0]


def _latest_action(session: Session, participant_id: int, now: datetime,
                   recent: timedelta) -> Row[int, Channel, ActionStatus, int] | None:
    return session.execute(_LATEST_ACTION, {"participant_id": participant_id,
                                            "ended_since": now - recent}).first()


def fallback_for(session: Session, previous: RouteDecision | str, *,
                 tried: Collection[str] = ()) -> RouteDecision | None:
    """Where the call goes when PREVIOUS's meldkamer is busy or does not answer: its
    configured fallback, keeping the caller, participant and action. None when there is no
    fallback, or it is one of TRIED (so that two meldkamers never hand a call back and forth).
    """
    code = previous if isinstance(previous, str) else previous.meldkamer_code
    current = meldkamer(session, code)
    if current is None or current.fallback_code is None:
        return None
    target = meldkamer(session, current.fallback_code)
    if target is None or target.code in {code, *tried}:
        return None
    detail = f"{code} busy or not answering; its fallback {target.code} takes the call"
    if isinstance(previous, RouteDecision):
        detail += f" (first routed by {previous.reason}: {previous.detail})"
        return _make(target, "fallback", detail, previous.action_id, previous.participant_id,
                     previous.caller)
    return _make(target, "fallback", detail, None, None, None)


def route_to(session: Session, code: str, reason: str, detail: str, *,
             action_id: int | None = None) -> RouteDecision:
    """A decision for a meldkamer chosen by the call flow itself (a key pressed in a voice
    message, the national fallback after a busy signal); an unreachable one hands over to its
    fallback, as in `resolve`."""
    return _decision(session, meldkamer(session, code), reason, detail, _Trail(),
                     action_id=action_id)


# --- steps -------------------------------------------------------------------------------------

def _caller(raw: str | None, national: str | None, trail: _Trail) -> str | None:
    caller = parse_caller(raw, national)
    if caller is None:
        if raw is None or not raw.strip():
            trail.note(NO_CALLER)
        elif is_withheld(raw):
            trail.note("caller number withheld")
        else:
            trail.note(f"caller id {raw.strip()[:40]!r} is not a phone number")
    return caller


def _by_action(session: Session, trail: _Trail, now: datetime,
               recent: timedelta) -> RouteDecision | None:
    assert trail.participant_id is not None
    row = _latest_action(session, trail.participant_id, now, recent)
    if row is None:
        hours = recent.total_seconds() / 3600
        trail.note(f"no action sent to participant {trail.participant_id} is active "
                   f"or ended within {hours:g} h")
        return None
    action_id, channel, status, meldkamer_id = row
    text = f"caller was sent action {action_id} ({status.value}) by {channel.value}"
    return _decision(session, meldkamer_by_id(session, meldkamer_id), "action", text, trail,
                     action_id=action_id)


Found = tuple[Place, str] | None


def _by_pidf(session: Session, request: RouteRequest, trail: _Trail, now: datetime) -> Found:
    if not request.pidf and not (request.geolocation_header or "").strip():
        return None
    try:
        location = location_from_body(request.pidf, request.content_type,
                                      request.geolocation_header)
    except PidfError as exc:
        trail.note(f"malformed PIDF-LO ignored ({exc})")
        return None
    if location is None:
        refs = parse_geolocation_header(request.geolocation_header)
        by_reference = [ref.uri for ref in refs if ref.by_reference]
        if by_reference:
            trail.note(f"location by reference <{by_reference[0][:60]}> cannot be "
                       "dereferenced; ignored")
        return None
    for text in location.notes:
        trail.note(f"PIDF-LO {text}")
    if location.has_point:
        assert location.lat is not None and location.lon is not None
        try:
            place = place_at_point(session, location.lat, location.lon)
            return place, (f"PIDF-LO {location.shape} ({location.lat:.3f}, {location.lon:.3f}) "
                           f"lies {place.describe()}")
        except UnknownPlace as exc:
            trail.note(f"PIDF-LO {location.shape} ignored: {exc}")
    if location.postcode:
        try:
            place = place_for_postcode(session, location.postcode)
            return place, f"PIDF-LO civic postcode {location.postcode} lies {place.describe()}"
        except UnknownPlace as exc:
            trail.note(f"PIDF-LO civic address ignored: {exc}")
    if location.city and location.country in (None, "NL"):
        try:
            place = place_by_name(session, location.city)
            return place, f"PIDF-LO civic city {location.city!r} lies {place.describe()}"
        except UnknownPlace as exc:
            trail.note(f"PIDF-LO civic address ignored: {exc}")
    if not location.has_point and not location.postcode:
        trail.note("PIDF-LO has no usable point, Dutch postcode or city")
    return None


def _by_coordinates(session: Session, request: RouteRequest, trail: _Trail,
                    now: datetime) -> Found:
    lat, lon = request.lat, request.lon
    if lat is None and lon is None:
        return None
    if lat is None or lon is None:
        trail.note("coordinates ignored: a latitude and a longitude are both needed")
        return None
    try:
        place = place_at_point(session, lat, lon)
    except (UnknownPlace, TypeError) as exc:
        trail.note(f"coordinates ignored: {exc}")
        return None
    return place, f"coordinates ({lat:.3f}, {lon:.3f}) lie {place.describe()}"


def _by_participant(session: Session, request: RouteRequest, trail: _Trail,
                    now: datetime) -> Found:
    if trail.participant_id is None:
        return None
    rows = session.execute(_LOCATIONS, {"participant_id": trail.participant_id}).all()
    who = f"participant {trail.participant_id}"
    if not rows:
        trail.note(f"{who} has no registered location")
        return None
    live = []
    for row in rows:
        if row.kind == LocationKind.CURRENT and row.expires_at is not None \
                and row.expires_at <= now:
            trail.note(f"{who}'s current location expired")
        else:
            live.append(row)
    live.sort(key=lambda r: (PLACE_ORDER.get(r.kind, 9), -r.id))
    for row in live:
        try:
            place = place_at_point(session, row.lat, row.lon)
        except UnknownPlace as exc:
            trail.note(f"{who}'s {row.kind.value} location ignored: {exc}")
            continue
        return place, f"{who}'s {row.kind.value} location lies {place.describe()}"
    return None


def _by_postcode(session: Session, request: RouteRequest, trail: _Trail,
                 now: datetime) -> Found:
    if request.postcode is None:
        return None
    pc4, reason = postcode_or_reason(request.postcode)
    if pc4 is None:
        trail.note(f"keyed input ignored: {reason}")
        return None
    try:
        place = place_for_postcode(session, pc4)
    except UnknownPlace as exc:
        trail.note(f"keyed input ignored: {exc}")
        return None
    return place, f"keyed postcode {pc4} lies {place.describe()}"


# --- the decision ------------------------------------------------------------------------------

def _decision(session: Session, target: MeldkamerInfo | None, reason: str, text: str,
              trail: _Trail, *, action_id: int | None = None,
              place: Place | None = None) -> RouteDecision:
    if target is None:
        raise ConfigError(f"{reason}: meldkamer missing from the database; "
                          "load the reference data")
    seen = {target.code}
    while not target.reachable and target.fallback_code not in (None, *seen):
        assert target.fallback_code is not None
        nxt = meldkamer(session, target.fallback_code)
        if nxt is None:
            break
        trail.note(f"{target.code} has no number or SIP URI; its fallback {nxt.code} "
                   "takes the call")
        seen.add(nxt.code)
        target = nxt
    detail = "; ".join([text, *trail.notes])
    return _make(target, reason, detail, action_id, trail.participant_id, trail.caller,
                 place=place, notes=tuple(trail.notes))


def _make(target: MeldkamerInfo, reason: str, detail: str, action_id: int | None,
          participant_id: int | None, caller: str | None, *, place: Place | None = None,
          notes: tuple[str, ...] = ()) -> RouteDecision:
    return RouteDecision(
        meldkamer_code=target.code, meldkamer_name=target.name, phone=target.phone or "",
        sip_uri=target.sip_uri or "", fallback_code=target.fallback_code, reason=reason,
        detail=detail, action_id=action_id, participant_id=participant_id, caller=caller,
        place=place, notes=notes)
