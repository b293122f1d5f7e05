from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import PhoneNumberError
from core.geo import AreaError, circle
from core.models import (
    AuditEvent,
    CallDirection,
    CallRecord,
    Channel,
    Language,
    LocationKind,
    Participant,
    ParticipantLocation,
    ParticipantStatus,
    Urgency,
)
from core.participants import (
    MAX_ATTEMPTS,
    HomeRequired,
    InvalidPostcode,
    NoSmsNumber,
    NotDutchMobile,
    RegistrationError,
    TooManyCodes,
    UnknownPostcode,
    VerificationFailed,
    add_location,
    add_location_by_postcode,
    add_place,
    change_preferences,
    forget,
    log_in,
    mobile_number,
    postcode_area,
    purge_unverified,
    register,
    remove_location,
    request_login_code,
    set_preferences,
    start,
    stop,
    verify,
)
from core.targeting import select_recipients

SECRET = "test-secret"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _signup(db: Session, phone: str = "06 12345678", **kwargs):
    return register(db, phone, secret=SECRET, now=NOW, pc4="3511", **kwargs)


def _participant(db: Session, phone: str = "+31612345678") -> Participant:
    return db.scalar(select(Participant).where(Participant.phone == phone))


def _reached(db: Session, participant: Participant) -> bool:
    recipients = select_recipients(db, circle(52.09, 5.11, 5_000), Urgency.URGENT,
                                   NOW + timedelta(minutes=5))
    return any(r.participant_id == participant.id for r in recipients)


def test_a_signup_is_pending_until_the_sms_code_is_confirmed(db: Session) -> None:
    sent = _signup(db)
    assert sent.phone == "+31612345678" and len(sent.code) == 6 and sent.code.isdigit()
    participant = _participant(db)
    assert participant.status == ParticipantStatus.PENDING
    assert participant.code_hash and sent.code not in participant.code_hash
    assert not _reached(db, participant)
    verify(db, "+31 6 1234 5678", sent.code, secret=SECRET, now=NOW + timedelta(minutes=1))
    assert participant.status == ParticipantStatus.VERIFIED
    assert _reached(db, participant)


@pytest.mark.parametrize("phone", ["+32 470 12 34 56", "+49 151 23456789"])
def test_belgian_and_german_mobile_numbers_can_sign_up(db: Session, phone: str) -> None:
    assert _signup(db, phone).phone.startswith("+")


@pytest.mark.parametrize("phone", ["020 123 4567", "+32 2 512 34 56", "+49 30 12345678",
                                   "066 1234567", "0970 12345678", "0900 123456",
                                   "0800 123456", "085 2123456"])
def test_a_number_that_cannot_receive_the_code_by_sms_cannot_sign_up(db: Session,
                                                                     phone: str) -> None:
    with pytest.raises(NoSmsNumber, match="not a mobile number"):
        _signup(db, phone)
    assert db.scalar(select(Participant)) is None
    assert db.scalar(select(AuditEvent).where(AuditEvent.verb == "register")) is None


def test_no_login_code_goes_to_a_fixed_line_signed_up_before_that_was_refused(
        db: Session) -> None:
    db.add(Participant(phone="+31201234567", status=ParticipantStatus.VERIFIED,
                       quiet_hours={}))
    db.flush()
    assert request_login_code(db, "020 123 4567", secret=SECRET, now=NOW) is None
    assert _participant(db, "+31201234567").code_hash is None


def test_a_malformed_number_is_refused_and_nothing_is_stored(db: Session) -> None:
    with pytest.raises(PhoneNumberError, match="not a valid phone number"):
        _signup(db, "06 123")
    assert db.scalar(select(Participant)) is None


def test_a_known_number_gets_the_same_answer_and_keeps_its_settings(db: Session) -> None:
    first = _signup(db, language=Language.NL)
    verify(db, first.phone, first.code, secret=SECRET, now=NOW)
    again = register(db, "0612345678", secret=SECRET, now=NOW + timedelta(minutes=2),
                     language=Language.EN, channels=["voice"])
    assert type(again) is type(first) and again.phone == first.phone
    participant = _participant(db)
    assert participant.status == ParticipantStatus.VERIFIED
    assert participant.language == Language.NL and participant.has_channel(Channel.SMS)
    assert not participant.has_channel(Channel.VOICE)


def test_wrong_expired_and_unknown_codes_fail_alike(db: Session) -> None:
    sent = _signup(db)
    wrong = "000000" if sent.code != "000000" else "111111"
    messages = set()
    for phone, code, when in [(sent.phone, wrong, NOW), ("+31687654321", sent.code, NOW),
                              (sent.phone, sent.code, NOW + timedelta(minutes=11)),
                              ("not a number", sent.code, NOW)]:
        with pytest.raises(VerificationFailed) as caught:
            verify(db, phone, code, secret=SECRET, now=when)
        messages.add(str(caught.value))
    assert messages == {"the code is wrong or has expired"}


def test_a_code_is_used_up_after_too_many_wrong_attempts(db: Session) -> None:
    sent = _signup(db)
    wrong = "000000" if sent.code != "000000" else "111111"
    for _ in range(MAX_ATTEMPTS):
        with pytest.raises(VerificationFailed):
            verify(db, sent.phone, wrong, secret=SECRET, now=NOW)
    with pytest.raises(VerificationFailed):
        verify(db, sent.phone, sent.code, secret=SECRET, now=NOW)
    assert _participant(db).status == ParticipantStatus.PENDING


def test_codes_are_not_sent_more_than_once_a_minute_or_five_times_a_day(db: Session) -> None:
    _signup(db)
    with pytest.raises(TooManyCodes, match="less than a minute"):
        register(db, "0612345678", secret=SECRET, now=NOW + timedelta(seconds=30))
    for minute in range(2, 6):
        register(db, "0612345678", secret=SECRET, now=NOW + timedelta(minutes=minute))
    with pytest.raises(TooManyCodes, match="today"):
        register(db, "0612345678", secret=SECRET, now=NOW + timedelta(minutes=10))
    register(db, "0612345678", secret=SECRET, now=NOW + timedelta(days=1, minutes=10))


def test_stop_is_final_until_start(db: Session) -> None:
    sent = _signup(db)
    participant = verify(db, sent.phone, sent.code, secret=SECRET, now=NOW)
    stop(db, participant, NOW)
    assert not _reached(db, participant)
    start(db, participant, NOW + timedelta(minutes=1))
    assert participant.status == ParticipantStatus.VERIFIED and _reached(db, participant)
    verbs = db.scalars(select(AuditEvent.verb).where(AuditEvent.object_id == str(participant.id))
                       .order_by(AuditEvent.id))
    assert list(verbs) == ["register", "verify", "stop", "start"]


def test_preferences_are_checked_before_anything_changes(db: Session) -> None:
    _signup(db)
    participant = _participant(db)
    with pytest.raises(RegistrationError, match="unknown channel 'fax'"):
        set_preferences(db, participant, channels=["sms", "fax"], language="en")
    with pytest.raises(RegistrationError, match="needs an e-mail address"):
        set_preferences(db, participant, channels=["email"])
    with pytest.raises(RegistrationError, match="is not HH:MM"):
        set_preferences(db, participant, quiet_hours={"sms": ["late", "07:00"]})
    with pytest.raises(RegistrationError, match="unknown language"):
        set_preferences(db, participant, language="fr")
    assert participant.language == Language.NL and participant.quiet_hours == {}
    set_preferences(db, participant, channels=["sms", "email"], email="me@example.org",
                    quiet_hours={"sms": ["23:00", "7:00"]}, language="en")
    assert participant.has_channel(Channel.EMAIL)
    assert participant.quiet_hours == {"sms": ["23:00", "07:00"]}


def test_locations_home_replaced_work_added_foreign_needs_a_country(db: Session) -> None:
    _signup(db)
    participant = _participant(db)
    assert participant.locations[0].pc4 == "3511"
    home = add_location(db, participant, LocationKind.HOME, lat=52.37, lon=4.89, now=NOW)
    assert home.country == "NL" and home.municipality_id is not None
    add_location_by_postcode(db, participant, LocationKind.WORK, "3511")
    with pytest.raises(RegistrationError, match="needs its country"):
        add_location(db, participant, LocationKind.WORK, lat=51.22, lon=4.40, now=NOW)
    antwerp = add_location(db, participant, LocationKind.WORK, lat=51.22, lon=4.40, now=NOW,
                           country="be")
    assert antwerp.country == "BE" and antwerp.municipality_id is None
    db.refresh(participant)
    assert sorted(loc.kind for loc in participant.locations) == ["home", "work", "work"]


def test_a_current_location_expires_within_a_day(db: Session) -> None:
    _signup(db)
    participant = _participant(db)
    with pytest.raises(RegistrationError, match="expiry within 24 hours"):
        add_location(db, participant, LocationKind.CURRENT, lat=52.0, lon=5.0, now=NOW)
    with pytest.raises(RegistrationError, match="expiry within 24 hours"):
        add_location(db, participant, LocationKind.CURRENT, lat=52.0, lon=5.0, now=NOW,
                     expires_at=NOW + timedelta(hours=25))
    add_location(db, participant, LocationKind.CURRENT, lat=52.0, lon=5.0, now=NOW,
                 expires_at=NOW + timedelta(hours=2))
    add_location(db, participant, LocationKind.CURRENT, lat=52.1, lon=5.1, now=NOW,
                 expires_at=NOW + timedelta(hours=2))
    db.refresh(participant)
    assert [loc.lat for loc in participant.locations if loc.kind == "current"] == [52.1]


@pytest.mark.parametrize(("lat", "lon"), [(10.0, 5.0), (52.0, 80.0)])
def test_coordinates_outside_europe_are_refused(db: Session, lat: float, lon: float) -> None:
    _signup(db)
    with pytest.raises(AreaError, match="outside Europe"):
        add_location(db, _participant(db), LocationKind.WORK, lat=lat, lon=lon, now=NOW)


def test_an_unknown_postcode_is_refused(db: Session) -> None:
    with pytest.raises(RegistrationError, match="'0000' is not a known"):
        register(db, "0612345678", secret=SECRET, now=NOW, pc4="0000")


# --- the participant portal ------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ("06 12345678", "+31612345678"), ("+31 6 1234 5678", "+31612345678"),
    ("0031612345678", "+31612345678"), ("06-1234-5678", "+31612345678")])
def test_a_dutch_mobile_number_is_read_in_any_usual_notation(raw: str, expected: str) -> None:
    assert mobile_number(raw) == expected


@pytest.mark.parametrize(("raw", "error"), [
    ("", PhoneNumberError), ("bel me", PhoneNumberError), ("06 123", PhoneNumberError),
    ("06 91234567", PhoneNumberError),  # the fictional demo block is no real number
    ("020 123 4567", NotDutchMobile), ("+32 470 12 34 56", NotDutchMobile),
    ("+49 151 23456789", NotDutchMobile), ("+44 7911 123456", NotDutchMobile),
    ("06 61234567", NotDutchMobile), ("0970 12345678", NotDutchMobile)])
def test_only_dutch_mobile_numbers_pass_the_portal_s_check(raw: str, error: type) -> None:
    with pytest.raises(error):
        mobile_number(raw)


@pytest.mark.parametrize(("text", "pc4"), [("3511", "3511"), (" 3511ab ", "3511"),
                                           ("3511 AB", "3511")])
def test_a_postcode_is_its_four_digit_area(db: Session, text: str, pc4: str) -> None:
    assert postcode_area(db, text).pc4 == pc4


@pytest.mark.parametrize(("text", "error"), [("0999", InvalidPostcode), ("35111", InvalidPostcode),
                                             ("3511 A", InvalidPostcode), ("", InvalidPostcode),
                                             ("8999", UnknownPostcode)])
def test_a_postcode_that_is_malformed_or_unknown_is_refused(db: Session, text: str,
                                                           error: type) -> None:
    with pytest.raises(error):
        postcode_area(db, text)


def test_a_login_code_goes_to_known_numbers_only(db: Session) -> None:
    assert request_login_code(db, "+31687654321", secret=SECRET, now=NOW) is None
    assert db.scalar(select(Participant)) is None
    first = _signup(db)
    with pytest.raises(TooManyCodes):
        request_login_code(db, first.phone, secret=SECRET, now=NOW + timedelta(seconds=5))
    sent = request_login_code(db, first.phone, secret=SECRET, now=NOW + timedelta(minutes=2))
    assert sent.phone == first.phone and sent.code.isdigit()


def test_logging_in_verifies_a_pending_sign_up_and_leaves_a_stopped_one_stopped(
        db: Session) -> None:
    sent = _signup(db)
    participant = log_in(db, sent.phone, sent.code, secret=SECRET, now=NOW)
    assert participant.status == ParticipantStatus.VERIFIED and participant.verified_at == NOW
    stop(db, participant, NOW)
    again = request_login_code(db, sent.phone, secret=SECRET, now=NOW + timedelta(minutes=2))
    with pytest.raises(VerificationFailed):
        log_in(db, sent.phone, "abcdef", secret=SECRET, now=NOW + timedelta(minutes=2))
    log_in(db, sent.phone, again.code, secret=SECRET, now=NOW + timedelta(minutes=3))
    assert participant.status == ParticipantStatus.STOPPED
    events = db.scalars(select(AuditEvent).where(AuditEvent.verb == "log_in")).all()
    assert [e.actor for e in events] == [f"participant:{participant.id}"] * 2


def test_changed_preferences_are_audited_by_name_without_the_address(db: Session) -> None:
    _signup(db)
    participant = _participant(db)
    assert change_preferences(db, participant, channels=["sms", "email"], quiet_hours={},
                              language="nl", email="me@example.org") == ["channels", "email"]
    assert change_preferences(db, participant, channels=["sms", "email"], quiet_hours={},
                              language="nl", email="me@example.org") == []
    [event] = db.scalars(select(AuditEvent).where(AuditEvent.verb == "set_preferences")).all()
    assert event.details["changed"] == ["channels", "email"]
    assert event.details["channels"] == ["email", "sms"]
    assert "me@example.org" not in str(event.details)


def test_places_by_postcode_and_removing_them(db: Session) -> None:
    _signup(db)
    participant = _participant(db)
    work = add_place(db, participant, LocationKind.WORK, "1012 AB", now=NOW)
    current = add_place(db, participant, LocationKind.CURRENT, "3521", now=NOW,
                        valid_for=timedelta(hours=3))
    assert (work.pc4, work.expires_at) == ("1012", None)
    assert (current.pc4, current.expires_at) == ("3521", NOW + timedelta(hours=3))
    with pytest.raises(RegistrationError, match="expiry within 24 hours"):
        add_place(db, participant, LocationKind.CURRENT, "3521", now=NOW,
                  valid_for=timedelta(hours=30))
    home = next(p for p in participant.locations if p.kind == LocationKind.HOME)
    with pytest.raises(HomeRequired):
        remove_location(db, participant, home.id)
    other = register(db, "0687654321", secret=SECRET, now=NOW, pc4="1012")
    stranger = _participant(db, other.phone)
    assert remove_location(db, stranger, work.id) is False
    assert remove_location(db, participant, work.id) is True
    db.refresh(participant)
    assert sorted(p.kind for p in participant.locations) == ["current", "home"]
    verbs = db.scalars(select(AuditEvent.verb).where(
        AuditEvent.object_id == str(participant.id), AuditEvent.verb.like("%location"))
        .order_by(AuditEvent.id)).all()
    assert verbs == ["add_location", "add_location", "remove_location"]


def test_forgetting_a_participant_leaves_calls_and_tips_without_them(db: Session) -> None:
    sent = _signup(db)
    participant = _participant(db)
    participant_id = participant.id
    inbound = CallRecord(direction=CallDirection.INBOUND, transport="twilio",
                         caller="0612345678", called="0800-0011", participant_id=participant_id)
    other = CallRecord(direction=CallDirection.INBOUND, transport="twilio",
                       caller="+31687654321", called="0800-0011")
    db.add_all([inbound, other])
    db.flush()
    forget(db, participant)
    db.expire_all()
    assert db.get(Participant, participant_id) is None
    assert db.scalar(select(ParticipantLocation)) is None
    assert (inbound.caller, inbound.participant_id) == (None, None)
    assert other.caller == "+31687654321"
    event = db.scalar(select(AuditEvent).where(AuditEvent.verb == "delete"))
    assert (event.actor, event.object_id, event.details) == (
        f"participant:{participant_id}", str(participant_id), {})
    assert sent.phone not in str([(e.actor, e.details) for e in
                                  db.scalars(select(AuditEvent)).all()])


def test_a_sign_up_never_confirmed_is_erased_once_its_code_has_expired(db: Session) -> None:
    unconfirmed = _signup(db)
    confirmed = _signup(db, "0687654321")
    verify(db, confirmed.phone, confirmed.code, secret=SECRET, now=NOW)
    stopped = _signup(db, "0611111111")
    verify(db, stopped.phone, stopped.code, secret=SECRET, now=NOW)
    stop(db, _participant(db, stopped.phone), NOW)
    register(db, "0622222222", secret=SECRET, now=NOW - timedelta(hours=25), pc4="3511")
    day_old = register(db, "0622222222", secret=SECRET, now=NOW - timedelta(minutes=1))
    day_old_id = _participant(db, day_old.phone).id
    pending = _participant(db)
    call = CallRecord(direction=CallDirection.INBOUND, transport="twilio", caller=pending.phone,
                      participant_id=pending.id, outcome="connected", routing_reason=(
                          "national_fallback: keyed input ignored: postcode '06 12345678#' "
                          "has 10 digits, not 4"))
    db.add(call)
    db.flush()

    assert [e.phone for e in purge_unverified(db, NOW + timedelta(minutes=5))] == [day_old.phone]
    assert _participant(db, day_old.phone) is None  # a day old: gone whatever its code
    assert _participant(db) is not None  # its code still holds
    gone = purge_unverified(db, NOW + timedelta(minutes=11))
    assert [(e.participant_id, e.phone) for e in gone] == [(pending.id, unconfirmed.phone)]
    assert purge_unverified(db, NOW + timedelta(minutes=12)) == []
    db.expire_all()
    assert sorted(db.scalars(select(Participant.phone))) == sorted([confirmed.phone,
                                                                  stopped.phone])
    assert db.scalar(select(func.count()).select_from(ParticipantLocation).where(
        ParticipantLocation.participant_id == pending.id)) == 0
    assert (call.participant_id, call.caller, call.outcome) == (None, None, "connected")
    assert call.routing_reason == ("national_fallback: keyed input ignored: postcode "
                                   "'[nummer verwijderd]#' has 10 digits, not 4")
    events = db.scalars(select(AuditEvent).where(AuditEvent.verb == "purge_unverified")
                        .order_by(AuditEvent.id)).all()
    assert [(e.actor, e.details) for e in events] == [
        ("system", {"participants": [day_old_id]}), ("system", {"participants": [pending.id]})]
