"""Registration and preferences of participants: service functions the web and SMS layers call.

Nothing here reveals whether a number is registered: registering a known number and an
unknown one answer alike (a code goes to that phone, and only its holder can use it), and a
wrong, expired or unknown code gets the same error. A participant is reached only after
verification and never after STOP.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

import phonenumbers
from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from core import audit
from core.errors import BurgernetError, PhoneNumberError
from core.geo import check_coordinates, in_netherlands
from core.models import (
    AuditEvent,
    CallRecord,
    Channel,
    Delivery,
    InquiryReaction,
    Language,
    LocationKind,
    Participant,
    ParticipantLocation,
    ParticipantStatus,
    Postcode,
    PushSubscription,
    Tip,
    channel_mask,
)
from core.phone import can_receive_sms, normalize
from core.privacy import national_digits, strip_number

CODE_TTL = timedelta(minutes=10)
MAX_ATTEMPTS = 5
RESEND_AFTER = timedelta(seconds=60)
MAX_SENDS_PER_DAY = 5
MAX_LOCATIONS = 5
MAX_CURRENT_TTL = timedelta(hours=24)
FOREIGN = {"BE", "DE"}
CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class RegistrationError(BurgernetError, ValueError):
    """A registration step that cannot be done; the message is safe to show."""

    error_id = "registration_error"


class VerificationFailed(RegistrationError):
    """Wrong, expired, used-up or unknown: deliberately one answer for all."""

    error_id = "verification_failed"

    def __init__(self) -> None:
        super().__init__("the code is wrong or has expired")


class TooManyCodes(RegistrationError):
    error_id = "too_many_codes"


class NoSmsNumber(RegistrationError):
    """A valid number that cannot receive the code by SMS: a fixed line, pager, service or
    premium-rate number. Nothing is stored for it."""

    error_id = "no_sms_number"


@dataclass(frozen=True)
class CodeToSend:
    """A verification code for the caller to send by SMS to PHONE (never stored in clear)."""

    phone: str
    code: str
    language: Language


def register(session: Session, phone: str, *, secret: str, now: datetime,
             language: Language = Language.NL, email: str | None = None,
             channels: Iterable[str] = (Channel.SMS,), pc4: str | None = None,
             allow_fictional: bool = True) -> CodeToSend:
    """Sign up PHONE, or re-send a code to it when it is known; the answer is the same.
    Only a mobile number can sign up (NoSmsNumber): the code goes to it by SMS."""
    number = normalize(phone, allow_fictional=allow_fictional)
    if not can_receive_sms(number):
        raise NoSmsNumber(f"{phone.strip()!r} is not a mobile number; the sign-up code goes "
                          "by SMS")
    participant = session.scalar(select(Participant).where(Participant.phone == number))
    if participant is None:
        participant = Participant(phone=number, status=ParticipantStatus.PENDING,
                                  consent_at=now, created_at=now, quiet_hours={})
        session.add(participant)
        set_preferences(session, participant, channels=channels, language=language,
                        email=email)
        session.flush()
        if pc4 is not None:
            add_location_by_postcode(session, participant, LocationKind.HOME, pc4)
        audit.record(session, "register", "participant", participant.id,
                     actor=actor_of(participant))
    code = _issue_code(participant, secret, now)
    return CodeToSend(number, code, participant.language)


def _issue_code(participant: Participant, secret: str, now: datetime) -> str:
    if participant.code_sent_at and now - participant.code_sent_at < RESEND_AFTER:
        raise TooManyCodes("a code was sent less than a minute ago; wait before asking again")
    if participant.code_sent_at is None or now - participant.code_sent_at > timedelta(days=1):
        participant.code_sends = 0
    if participant.code_sends >= MAX_SENDS_PER_DAY:
        raise TooManyCodes("too many codes requested for this number today; try tomorrow")
    code = f"{secrets.randbelow(1_000_000):06d}"
    participant.code_hash = _code_hash(secret, participant.phone, code)
    participant.code_expires_at = now + CODE_TTL
    participant.code_attempts = 0
    participant.code_sent_at = now
    participant.code_sends += 1
    return code


def _code_hash(secret: str, phone: str, code: str) -> str:
    return hmac.new(secret.encode(), f"{phone}:{code}".encode(), hashlib.sha256).hexdigest()


def verify(session: Session, phone: str, code: str, *, secret: str,
           now: datetime) -> Participant:
    """Confirm PHONE with the CODE sent to it: the participant becomes verified (again)."""
    try:
        number = normalize(phone)
    except BurgernetError:
        raise VerificationFailed() from None
    participant = _check_code(session, number, code, secret, now)
    participant.status = ParticipantStatus.VERIFIED
    participant.verified_at = now
    participant.consent_at = participant.consent_at if participant.stopped_at is None else now
    participant.stopped_at = None
    audit.record(session, "verify", "participant", participant.id, actor=actor_of(participant))
    return participant


def _check_code(session: Session, number: str, code: str, secret: str,
                now: datetime) -> Participant:
    """The participant of NUMBER if CODE is its pending code (which is then used up)."""
    participant = session.scalar(select(Participant).where(Participant.phone == number))
    if (participant is None or participant.code_hash is None
            or participant.code_expires_at is None or participant.code_expires_at < now):
        raise VerificationFailed()
    given = _code_hash(secret, number, (code or "").strip())
    if not hmac.compare_digest(given, participant.code_hash):
        participant.code_attempts += 1
        if participant.code_attempts >= MAX_ATTEMPTS:
            participant.code_hash = None  # used up: a new code is needed
        raise VerificationFailed()
    participant.code_hash = None
    participant.code_expires_at = None
    return participant


def actor_of(participant: Participant) -> str:
    """Who the audit trail names for a participant's own act: their id, never their number."""
    return f"participant:{participant.id}"


def stop(session: Session, participant: Participant, now: datetime,
         message_sid: str | None = None) -> None:
    """STOP: nothing more is sent to this participant until they START again. MESSAGE_SID,
    the provider's id of the SMS that said so, is kept in the audit trail (`said_before`)."""
    participant.status = ParticipantStatus.STOPPED
    participant.stopped_at = now
    participant.code_hash = None
    said: dict[str, Any] = {"message_sid": message_sid} if message_sid else {}
    audit.record(session, "stop", "participant", participant.id, actor=actor_of(participant),
                 **said)


def start(session: Session, participant: Participant, now: datetime,
          message_sid: str | None = None) -> None:
    """START from the participant's own phone (an SMS proves they hold the number)."""
    participant.status = ParticipantStatus.VERIFIED
    participant.verified_at = participant.verified_at or now
    if participant.stopped_at is not None:
        participant.consent_at = now
    participant.stopped_at = None
    said: dict[str, Any] = {"message_sid": message_sid} if message_sid else {}
    audit.record(session, "start", "participant", participant.id, actor=actor_of(participant),
                 **said)


def said_before(session: Session, participant: Participant, message_sid: str) -> bool:
    """Whether the SMS MESSAGE_SID already stopped or started this participant: a replayed
    START must not sign up again someone who has stopped since (the database decides, not a
    cache that may have been emptied)."""
    return session.scalar(
        select(AuditEvent.id).where(
            AuditEvent.object_type == "participant", AuditEvent.object_id == str(participant.id),
            AuditEvent.verb.in_(("stop", "start")),
            AuditEvent.details["message_sid"].as_string() == message_sid).limit(1)) is not None


def set_preferences(session: Session, participant: Participant, *,
                    channels: Iterable[str] | None = None,
                    quiet_hours: dict[str, Any] | None = None,
                    language: str | None = None, email: str | None = None) -> None:
    """Change what the participant chose; every value is checked before anything changes."""
    new_email = participant.email if email is None else (email.strip() or None)
    if new_email is not None and not EMAIL.match(new_email):
        raise RegistrationError(f"{new_email!r} is not an e-mail address")
    chosen = participant.channels if channels is None else channel_mask(_channels(channels))
    if chosen & Channel.EMAIL.bit and new_email is None:
        raise RegistrationError("the e-mail channel needs an e-mail address")
    new_language = participant.language if language is None else _language(language)
    quiet = participant.quiet_hours if quiet_hours is None else _quiet_hours(quiet_hours)
    participant.email, participant.channels = new_email, chosen
    participant.language, participant.quiet_hours = new_language, quiet


def _channels(names: Iterable[str]) -> set[Channel]:
    chosen = set()
    for name in names:
        try:
            chosen.add(Channel(name))
        except ValueError:
            raise RegistrationError(f"unknown channel {name!r} (voice, sms, email, push)") from None
    return chosen


def _language(value: str) -> Language:
    try:
        return Language(value)
    except ValueError:
        raise RegistrationError(f"unknown language {value!r} (nl or en)") from None


def _quiet_hours(value: dict[str, Any]) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise RegistrationError("quiet hours must map a channel to [start, end]")
    result = {}
    for name, window in value.items():
        channel = next(iter(_channels([name])))
        if not isinstance(window, list | tuple) or len(window) != 2:
            raise RegistrationError(f"quiet hours for {name}: give [start, end] as HH:MM")
        clocks = [CLOCK.match(str(v)) for v in window]
        if not all(clocks):
            raise RegistrationError(f"quiet hours for {name}: {window!r} is not HH:MM")
        start_at, end_at = (time(int(m[1]), int(m[2])) for m in clocks if m)
        if start_at == end_at:
            raise RegistrationError(f"quiet hours for {name}: start and end are the same")
        result[channel.value] = [start_at.strftime("%H:%M"), end_at.strftime("%H:%M")]
    return result


def add_location(session: Session, participant: Participant, kind: LocationKind, *,
                 lat: float, lon: float, now: datetime, country: str | None = None,
                 expires_at: datetime | None = None) -> ParticipantLocation:
    """Add a place to reach the participant; a new home or current place replaces the old one.

    Dutch points get their PC4 area and municipality (nearest PC4 centroid); a point outside
    the Netherlands needs its country (BE or DE), since there is no foreign routing table.
    """
    kind = LocationKind(kind)
    check_coordinates(lat, lon, "location")
    pc4 = municipality_id = None
    if in_netherlands(lat, lon):
        country = "NL"
        pc4, municipality_id = nearest_postcode(session, lat, lon)
    elif (country or "").upper() not in FOREIGN:
        raise RegistrationError("a location outside the Netherlands needs its country "
                                "(BE or DE)")
    if kind == LocationKind.CURRENT:
        if expires_at is None or not now < expires_at <= now + MAX_CURRENT_TTL:
            raise RegistrationError("a current location needs an expiry within 24 hours")
    elif expires_at is not None:
        raise RegistrationError(f"a {kind.value} location does not expire")
    return _store(session, participant, ParticipantLocation(
        kind=kind, lat=lat, lon=lon, country=(country or "NL").upper(), pc4=pc4,
        municipality_id=municipality_id, expires_at=expires_at))


def add_location_by_postcode(session: Session, participant: Participant, kind: LocationKind,
                             pc4: str) -> ParticipantLocation:
    """A home or work location at the centroid of a Dutch four-digit postcode."""
    kind = LocationKind(kind)
    if kind == LocationKind.CURRENT:
        raise RegistrationError("a current location needs coordinates, not a postcode")
    area = session.get(Postcode, (pc4 or "").strip())
    if area is None:
        raise RegistrationError(f"postcode {pc4!r} is not a known four-digit Dutch postcode")
    return _store(session, participant, ParticipantLocation(
        kind=kind, lat=area.lat, lon=area.lon, country="NL", pc4=area.pc4,
        municipality_id=area.municipality_id))


def _store(session: Session, participant: Participant,
           location: ParticipantLocation) -> ParticipantLocation:
    if location.kind in {LocationKind.HOME, LocationKind.CURRENT}:
        session.execute(delete(ParticipantLocation).where(
            ParticipantLocation.participant_id == participant.id,
            ParticipantLocation.kind == location.kind))
        session.expire(participant, ["locations"])
    if len(participant.locations) >= MAX_LOCATIONS:
        raise RegistrationError(f"at most {MAX_LOCATIONS} locations per participant")
    location.participant_id = participant.id
    session.add(location)
    session.flush()
    return location


def nearest_postcode(session: Session, lat: float, lon: float) -> tuple[str | None, int | None]:
    """The inhabited PC4 area whose point is nearest (looked up in a widening box); PO-box
    ranges share their town's centre and nobody lives in them."""
    for reach in (0.05, 0.2, 1.0):
        rows = session.execute(
            select(Postcode.pc4, Postcode.lat, Postcode.lon, Postcode.municipality_id)
            .where(Postcode.lat.between(lat - reach, lat + reach),
                   Postcode.lon.between(lon - reach * 1.6, lon + reach * 1.6),
                   Postcode.population > 0)).all()
        if rows:
            best = min(rows, key=lambda r: ((r.lat - lat) ** 2 + ((r.lon - lon) * 0.62) ** 2,
                                            r.pc4))  # a tie: the lower postcode
            return best.pc4, best.municipality_id
    return None, None


# --- the participant portal: sign-up by mobile number, logging in, erasure --------------

#: A Dutch postcode: four digits (not starting with 0), optionally its two letters (PC6).
POSTCODE = re.compile(r"^\s*([1-9]\d{3})\s*([A-Za-z]{2})?\s*$")


class NotDutchMobile(RegistrationError):
    """A real number, but not a Dutch mobile one: the portal signs up 06 numbers only."""

    error_id = "not_dutch_mobile"


class InvalidPostcode(RegistrationError):
    error_id = "invalid_postcode"


class UnknownPostcode(RegistrationError):
    error_id = "unknown_postcode"


class HomeRequired(RegistrationError):
    """The home place is how a participant is found in an area: it is changed, not removed."""

    error_id = "home_required"


def mobile_number(raw: str) -> str:
    """RAW as E.164 if it is a Dutch mobile (06) number; PhoneNumberError when it is no
    number at all or a fictional demo number, NotDutchMobile for a landline, pager,
    machine-to-machine (097) or foreign number."""
    text = (raw or "").strip()
    compact = re.sub(r"[\s\-().]", "", text)
    if not compact:
        raise PhoneNumberError("phone number is empty")
    try:
        number = phonenumbers.parse(compact, "NL")
    except phonenumbers.NumberParseException:
        raise PhoneNumberError(f"{text!r} is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise PhoneNumberError(f"{text!r} is not a valid phone number")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if phonenumbers.region_code_for_number(number) != "NL" or not can_receive_sms(e164):
        raise NotDutchMobile(f"{text!r} is not a Dutch mobile number")
    return e164


def postcode_area(session: Session, text: str) -> Postcode:
    """The PC4 area of a postcode typed as 3511 or 3511 AB (the letters are not kept)."""
    match = POSTCODE.match(text or "")
    if match is None:
        raise InvalidPostcode(f"{text!r} is not a postcode like 3511 or 3511 AB")
    area = session.get(Postcode, match[1])
    if area is None:
        raise UnknownPostcode(f"postcode {match[1]} is not a known Dutch postcode")
    return area


def request_login_code(session: Session, phone: str, *, secret: str,
                       now: datetime) -> CodeToSend | None:
    """A code to log in with for a known number; None for an unknown one, which gets no SMS
    (the caller gives the same answer either way, so registration does not show), and None
    for a number that cannot receive an SMS (registered as a fixed line before that was
    refused): no code goes to a number that could earn someone money per message."""
    number = normalize(phone)
    participant = session.scalar(select(Participant).where(Participant.phone == number))
    if participant is None or not can_receive_sms(number):
        return None
    return CodeToSend(number, _issue_code(participant, secret, now), participant.language)


def log_in(session: Session, phone: str, code: str, *, secret: str,
           now: datetime) -> Participant:
    """The participant whose pending CODE this is, for their own page. A pending sign-up
    becomes verified (the code proves the number); a stopped one stays stopped, since
    logging in to delete one's data or to read one's settings is no wish to rejoin."""
    try:
        number = normalize(phone)
    except BurgernetError:
        raise VerificationFailed() from None
    participant = _check_code(session, number, code, secret, now)
    if participant.status == ParticipantStatus.PENDING:
        participant.status, participant.verified_at = ParticipantStatus.VERIFIED, now
    audit.record(session, "log_in", "participant", participant.id, actor=actor_of(participant))
    return participant


def change_preferences(session: Session, participant: Participant, *,
                       channels: Iterable[str], quiet_hours: dict[str, Any], language: str,
                       email: str) -> list[str]:
    """set_preferences with an audit event naming what changed (the address never)."""
    fields = ("channels", "quiet_hours", "language", "email")
    before = [getattr(participant, name) for name in fields]
    set_preferences(session, participant, channels=channels, quiet_hours=quiet_hours,
                    language=language, email=email)
    changed = [name for name, old in zip(fields, before, strict=True)
               if getattr(participant, name) != old]
    if changed:
        audit.record(session, "set_preferences", "participant", participant.id,
                     actor=actor_of(participant), changed=changed,
                     channels=sorted(c.value for c in Channel if participant.has_channel(c)),
                     language=Language(participant.language).value,
                     quiet_hours=participant.quiet_hours)
    return changed


def add_place(session: Session, participant: Participant, kind: LocationKind, postcode: str,
              *, now: datetime, valid_for: timedelta | None = None) -> ParticipantLocation:
    """A home, work or current place at the centroid of a postcode's PC4 area; a current
    place holds for VALID_FOR (at most a day), a new home or current place replaces the old."""
    kind = LocationKind(kind)
    area = postcode_area(session, postcode)
    if kind == LocationKind.CURRENT:
        if valid_for is None:
            raise RegistrationError("a current location needs an expiry within 24 hours")
        location = add_location(session, participant, kind, lat=area.lat, lon=area.lon,
                                now=now, expires_at=now + valid_for)
        location.pc4, location.municipality_id = area.pc4, area.municipality_id
    else:
        location = add_location_by_postcode(session, participant, kind, area.pc4)
    audit.record(session, "add_location", "participant", participant.id,
                 actor=actor_of(participant), location=location.id, kind=kind.value)
    return location


def remove_location(session: Session, participant: Participant, location_id: int) -> bool:
    """Forget one of the participant's own places; False when it is not theirs."""
    location = session.scalar(select(ParticipantLocation).where(
        ParticipantLocation.id == location_id,
        ParticipantLocation.participant_id == participant.id))
    if location is None:
        return False
    if location.kind == LocationKind.HOME:
        raise HomeRequired("the home location can be changed, not removed")
    audit.record(session, "remove_location", "participant", participant.id,
                 actor=actor_of(participant), location=location.id,
                 kind=LocationKind(location.kind).value)
    session.delete(location)
    session.flush()
    session.expire(participant, ["locations"])
    return True


@dataclass(frozen=True)
class Erased:
    """A participant just erased: what the caller may still have to clear outside the
    database (the demo's record of sent messages)."""

    participant_id: int
    phone: str
    email: str | None


def forget(session: Session, participant: Participant) -> Erased:
    """Delete my data: the participant, their places, devices, messages and reactions go;
    calls and tips stay for the police and the statistics, without the link to them and
    without their number (or address) in any of their texts. The audit event keeps their
    id only."""
    erased = Erased(participant.id, participant.phone, participant.email)
    session.expire(participant, ["locations"])
    _erase(session, [erased], mentions=True)
    audit.record(session, "delete", "participant", erased.participant_id,
                 actor=f"participant:{erased.participant_id}")
    return erased


#: A sign-up that was never confirmed is gone once its code has expired, and after a day
#: whatever its code.
UNVERIFIED_MAX_AGE = timedelta(hours=24)
PURGE_BATCH = 500


def purge_unverified(session: Session, now: datetime, *,
                     limit: int = PURGE_BATCH) -> list[Erased]:
    """Erase up to LIMIT sign-ups never confirmed whose code has expired (or that are older
    than UNVERIFIED_MAX_AGE), with their calls' link and number. The rows are locked as they
    are chosen: another transaction purging skips them (PostgreSQL) or waits for the one
    writer (SQLite), so several workers and a second run are harmless."""
    unverified = _unverified(now)
    rows = session.execute(
        select(Participant.id, Participant.phone, Participant.email).where(*unverified)
        .order_by(Participant.id).limit(limit).with_for_update(skip_locked=True)).all()
    gone = _erase(session, [Erased(*row) for row in rows], unverified, mentions=False)
    if gone:
        audit.record(session, "purge_unverified", "participant", actor="system",
                     participants=[one.participant_id for one in gone])
    return gone


def _unverified(now: datetime) -> tuple[Any, ...]:
    return (Participant.status == ParticipantStatus.PENDING,
            Participant.verified_at.is_(None),
            or_(Participant.code_expires_at.is_(None), Participant.code_expires_at <= now,
                Participant.created_at <= now - UNVERIFIED_MAX_AGE))


def _erase(session: Session, erased: list[Erased], only_if: Iterable[Any] = (), *,
           mentions: bool) -> list[Erased]:
    """Remove the participants ERASED for whom ONLY_IF still holds, and everything of
    theirs; returns those removed. MENTIONS: also take their number out of call records and
    tips that are not linked to them (someone who typed it), at the cost of a table scan."""
    ids = set(session.scalars(select(Participant.id).where(
        Participant.id.in_([one.participant_id for one in erased]), *only_if)))
    gone = [one for one in erased if one.participant_id in ids]
    if not gone:
        return []
    deliveries = select(Delivery.id).where(Delivery.participant_id.in_(ids))
    session.execute(delete(InquiryReaction).where(InquiryReaction.delivery_id.in_(deliveries)))
    for model in (Delivery, PushSubscription, ParticipantLocation):
        session.execute(delete(model).where(model.participant_id.in_(ids)))
    _scrub_calls(session, gone, mentions)
    _scrub_tips(session, gone, mentions)
    session.execute(delete(Participant).where(Participant.id.in_(ids)))
    return gone


def _scrub_calls(session: Session, erased: list[Erased], mentions: bool) -> None:
    """Call records keep their times, meldkamer and outcome for the statistics; the link to
    the participant and their number (as caller, in the called URI, in the routing reason)
    go."""
    ids = [one.participant_id for one in erased]
    found: list[ColumnElement[bool]] = [CallRecord.participant_id.in_(ids),
             CallRecord.caller.in_([one.phone for one in erased])]
    if mentions:
        for one in erased:
            found += [column.contains(form, autoescape=True) for form in _phone_forms(one.phone)
                      for column in (CallRecord.caller, CallRecord.called)]
            found.append(_digits_of(CallRecord.routing_reason).contains(
                national_digits(one.phone)))
    for record in session.scalars(select(CallRecord).where(or_(*found))):
        if record.participant_id in ids:
            record.participant_id = None
        for one in erased:
            forms = _phone_forms(one.phone)
            if record.caller and any(form in record.caller for form in forms):
                record.caller = None
            if record.called and any(form in record.called for form in forms):
                record.called = None
            if record.routing_reason:
                record.routing_reason = strip_number(record.routing_reason, one.phone)[:255]
    session.flush()


def _scrub_tips(session: Session, erased: list[Erased], mentions: bool) -> None:
    """A tip stays for the investigation, without the link to its sender and without their
    number or e-mail address in its text."""
    ids = [one.participant_id for one in erased]
    found: list[ColumnElement[bool]] = [Tip.participant_id.in_(ids)]
    if mentions:
        for one in erased:
            found.append(_digits_of(Tip.text).contains(national_digits(one.phone)))
            if one.email:
                found.append(func.lower(Tip.text).contains(one.email.lower(), autoescape=True))
    for tip in session.scalars(select(Tip).where(or_(*found))):
        if tip.participant_id in ids:
            tip.participant_id = None
        for one in erased:
            tip.text = strip_number(tip.text, one.phone, one.email)
    session.flush()


def _digits_of(column: Any) -> Any:
    """COLUMN without the characters a written number is split by, in SQL (both databases)."""
    for separator in (" ", "-", ".", "(", ")", "/", "\t", "\u00a0"):
        column = func.replace(column, separator, "")
    return column


def _phone_forms(e164: str) -> list[str]:
    """How a number may be written in a call record: +31612345678, 31612345678 (inside
    0031… or a SIP URI) and 0612345678."""
    forms = [e164, e164.lstrip("+")]
    try:
        forms.append("0" + str(phonenumbers.parse(e164).national_number))
    except phonenumbers.NumberParseException:
        pass
    return forms
