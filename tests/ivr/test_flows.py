"""The call flows as transcripts: what the caller hears, where the call goes, what is recorded."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import (
    Action,
    ActionKind,
    ActionStatus,
    CallRecord,
    Channel,
    Delivery,
    DeliveryStatus,
    Language,
    LocationKind,
    Meldkamer,
    Organisation,
    OrganisationKind,
    Participant,
    ParticipantStatus,
    Urgency,
)
from core.participants import add_location_by_postcode
from ivr.flows import Flows, Incoming, call_ended, steps_text
from ivr.prompts import load_catalogue
from ivr.steps import CallState, Dial, DialResult, Digits, FlowError, Gather, Hangup, Turn

NOW = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)
WITHHELD = Incoming(transport="test", call_id="CA-withheld", caller="anonymous",
                    called="+31800001100")


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


@pytest.fixture
def flows(db: Session, catalogue) -> Flows:
    return Flows(db, catalogue, national_fallback="MN", clock=lambda: NOW,
                 message_text=lambda delivery: f"Tekst van actie {delivery.action_id}.")


def meldkamer(db: Session, code: str) -> Meldkamer:
    found = db.scalar(select(Meldkamer).where(Meldkamer.code == code))
    assert found is not None
    return found


@pytest.fixture
def sent_action(db: Session) -> Delivery:
    """A participant in English who was sent an active action of meldkamer RT by voice."""
    org = Organisation(name="Politie Flows", kind=OrganisationKind.POLICE)
    action = Action(kind=ActionKind.MISSING_PERSON, urgency=Urgency.URGENT,
                    status=ActionStatus.ACTIVE, title_nl="Vermist meisje Sanne",
                    title_en="Missing girl Sanne", center_lat=51.92, center_lon=4.48,
                    radius_m=2000, organisation=org, meldkamer=meldkamer(db, "RT"),
                    started_at=NOW - timedelta(minutes=20))
    person = Participant(phone="+31690004242", status=ParticipantStatus.VERIFIED,
                         language=Language.EN)
    delivery = Delivery(action=action, participant=person, channel=Channel.VOICE,
                        language=Language.EN, status=DeliveryStatus.ANSWERED,
                        sent_at=NOW - timedelta(minutes=15))
    db.add(delivery)
    db.flush()
    return delivery


def dial_of(turn: Turn) -> Dial:
    assert isinstance(turn.waits_for, Dial), steps_text(turn.steps)
    return turn.waits_for


def record_of(db: Session, turn: Turn) -> CallRecord:
    record = db.get(CallRecord, turn.state.record)
    assert record is not None
    return record


def test_a_withheld_caller_keys_a_postcode_and_is_put_through_to_that_region(db, flows):
    turn = flows.start_free(WITHHELD)
    gather = turn.waits_for
    assert isinstance(gather, Gather) and (gather.max_digits, gather.lead_keys) == (4, "*")
    assert gather.finish_on_key == "#" and gather.max_keys == 5
    assert "Burgernet" in gather.prompts[0].text and gather.prompts[0].language == "nl"

    turn = flows.advance(turn.state, Digits(""))
    gather = turn.waits_for
    assert isinstance(gather, Gather) and gather.max_digits == 4 and gather.finish_on_key == "#"
    assert "postcode" in gather.prompts[-1].text

    turn = flows.advance(turn.state, Digits("3441"))  # Woerden, region Utrecht
    dial = dial_of(turn)
    assert dial.meldkamer == "MN" and dial.phone == meldkamer(db, "MN").phone
    assert "postcode" in dial.whisper.text and "onbekend" in dial.whisper.text
    record = record_of(db, turn)
    assert record.routing_reason.startswith("postcode")
    assert record.caller is None and record.meldkamer.code == "MN"


def test_busy_and_unanswered_meldkamers_hand_over_until_nobody_is_left(db, flows):
    turn = flows.advance(flows.advance(flows.start_free(WITHHELD).state, Digits("")).state,
                         Digits("3011"))  # Rotterdam: RT, whose fallback is DH
    assert dial_of(turn).meldkamer == "RT"

    turn = flows.advance(turn.state, DialResult("busy"))
    assert dial_of(turn).meldkamer == "DH"
    assert any("meldkamer" in line for line in steps_text(turn.steps[:-1]))
    assert record_of(db, turn).routing_reason == "fallback: RT busy"

    turn = flows.advance(turn.state, DialResult("no-answer"))
    assert dial_of(turn).meldkamer == "MN"  # DH's fallback RT was tried: the national one

    turn = flows.advance(turn.state, DialResult("failed"))
    assert turn.ends and "112" in steps_text(turn.steps)[0]
    assert record_of(db, turn).outcome == "unanswered"


def test_three_wrong_postcodes_go_to_the_national_fallback_with_the_reason(db, flows):
    turn = flows.advance(flows.start_free(WITHHELD).state, Digits(""))
    heard = []
    for keys in ("12", "0000", "1004"):  # too short, impossible, not in use
        turn = flows.advance(turn.state, Digits(keys))
        heard += steps_text(turn.steps)
    dial = dial_of(turn)
    assert dial.meldkamer == "MN"
    assert any("geldige postcode" in line for line in heard), heard
    assert any("kennen" in line or "onbekend" in line.lower() for line in heard), heard
    record = record_of(db, turn)
    assert record.routing_reason.startswith("national_fallback")
    assert "3 attempts" in record.routing_reason


def test_star_switches_the_call_to_english(flows):
    turn = flows.advance(flows.start_free(WITHHELD).state, Digits("*"))
    assert steps_text(turn.steps) == [
        "say[en]: Please key in the four digits of the postcode where you are now, followed by "
        "the hash key.",
        "gather: 4 digit(s), 8 s, ends on #"]
    assert turn.state.language == "en" and turn.state.attempts == 0


def test_a_caller_who_was_sent_an_action_is_announced_and_put_through(db, flows, sent_action):
    turn = flows.start_free(Incoming(transport="test", call_id="CA-known",
                                     caller="+31690004242", called="+31800001100"))
    assert turn.state.language == "en"  # the participant's own language
    turn = flows.advance(turn.state, Digits(""))
    dial = dial_of(turn)
    assert dial.meldkamer == "RT"
    assert "Missing girl Sanne" in steps_text(turn.steps)[0]
    assert "Vermist meisje Sanne" in dial.whisper.text  # the centralist hears Dutch
    assert "3 1 6 9 0 0 0 4 2 4 2" in dial.whisper.text
    record = record_of(db, turn)
    assert record.action_id == sent_action.action_id and record.routing_reason.startswith("action")

    flows.whisper(turn.state)
    turn = flows.advance(turn.state, DialResult("completed"))
    assert turn.ends and record.outcome == "connected" and record.connected_at == NOW
    assert call_ended(db, NOW + timedelta(minutes=3), call_id="CA-known")
    assert not call_ended(db, NOW + timedelta(minutes=4), call_id="CA-known")
    assert record.ended_at == NOW + timedelta(minutes=3)


def test_the_voice_message_repeats_on_2_and_puts_through_on_1(db, flows, sent_action):
    turn = flows.start_message(sent_action.id, transport="test", call_id="CA-out")
    lines = steps_text(turn.steps)
    assert f"Tekst van actie {sent_action.action_id}." in " ".join(lines)
    assert turn.state.language == "en"

    again = flows.advance(turn.state, Digits("2"))
    assert f"Tekst van actie {sent_action.action_id}." in " ".join(steps_text(again.steps))
    turn = flows.advance(again.state, Digits("1"))
    assert dial_of(turn).meldkamer == "RT"
    record = record_of(db, turn)
    assert record.direction == "outbound" and record.action_id == sent_action.action_id


def test_the_voice_message_without_a_key_says_goodbye(db, flows, sent_action):
    turn = flows.start_message(sent_action.id, transport="test", call_id="CA-out2")
    turn = flows.advance(turn.state, Digits(""))
    assert turn.ends and isinstance(turn.steps[-1], Hangup)
    assert record_of(db, turn).outcome == "listened"


def test_the_caller_hanging_up_while_it_rings_is_recorded(db, flows):
    turn = flows.advance(flows.advance(flows.start_free(WITHHELD).state, Digits("")).state,
                         Digits("3441"))
    turn = flows.advance(turn.state, DialResult("canceled"))
    assert turn.ends and record_of(db, turn).outcome == "caller_hung_up"


def test_events_that_do_not_fit_the_stage_are_refused(flows):
    state = flows.start_free(WITHHELD).state
    with pytest.raises(FlowError):
        flows.advance(state, DialResult("busy"))
    with pytest.raises(FlowError):
        flows.advance(state.but(stage="nowhere"), Digits("1"))
    with pytest.raises(FlowError):
        flows.advance(state.but(record=10**9), Digits("1"))


def test_the_state_survives_a_round_trip_through_a_url():
    state = CallState(flow="free", record=12, stage="dial", language="en", attempts=2,
                      tried=("RT", "DH"), delivery=7)
    assert CallState.decode(state.encode()) == state


@given(st.dictionaries(st.sampled_from(["flow", "record", "stage", "lang", "attempts",
                                        "tried", "delivery"]), st.text(max_size=12)))
def test_a_tampered_state_is_refused_cleanly(params):
    try:
        CallState.decode(params)
    except FlowError:
        pass


# --- keys typed ahead during the greeting ------------------------------------------------

@pytest.fixture
def registered_caller(db: Session) -> Participant:
    """A participant without an action whose registered home lies in Delft (meldkamer DH)."""
    person = Participant(phone="+31690005353", status=ParticipantStatus.VERIFIED)
    db.add(person)
    db.flush()
    add_location_by_postcode(db, person, LocationKind.HOME, "2611")
    return person


def greeted(flows: Flows, keys: str, call: Incoming = WITHHELD) -> Turn:
    """The turn after KEYS were pressed during the greeting."""
    return flows.advance(flows.start_free(call).state, Digits(keys))


PUT_THROUGH_TO_RT = [
    "dial RT: +31690000107 / sip:+31690000107@127.0.0.1:5060, 20 s",
    "  whisper[nl]: Burgernetgesprek zonder lopende actie. Beller onbekend. Doorverbonden op "
    "basis van de ingetoetste postcode."]


@pytest.mark.parametrize("keys", ["3011", "3011#"])
def test_a_postcode_typed_ahead_during_the_greeting_puts_the_caller_through_at_once(
        db, flows, keys):
    turn = greeted(flows, keys)  # Rotterdam: meldkamer Rotterdam-Rijnmond
    assert steps_text(turn.steps) == [
        "say[nl]: U wordt doorverbonden. Een ogenblik geduld alstublieft.", *PUT_THROUGH_TO_RT]
    assert record_of(db, turn).routing_reason == (
        "postcode: keyed postcode 3011 lies in Rotterdam (region Rotterdam-Rijnmond); "
        "no caller number; typed ahead during the greeting")


def test_star_and_a_postcode_typed_ahead_switch_to_english_and_put_through(db, flows):
    turn = greeted(flows, "*3011")
    assert steps_text(turn.steps) == [
        "say[en]: You are being put through. One moment please.", *PUT_THROUGH_TO_RT]
    assert turn.state.language == "en"


@pytest.mark.parametrize(("keys", "language"), [("30", "nl"), ("9", "nl"), ("*30", "en"),
                                                ("0", "nl"), ("30115", "nl")])
def test_too_few_or_too_many_digits_typed_ahead_are_a_first_wrong_postcode(
        db, flows, keys, language):
    turn = greeted(flows, keys)
    invalid = flows.catalogue.text("postcode_invalid", language)
    ask = flows.catalogue.text("ask_postcode", language)
    assert steps_text(turn.steps) == [f"say[{language}]: {invalid}", f"say[{language}]: {ask}",
                                      "gather: 4 digit(s), 8 s, ends on #"]
    assert (turn.state.stage, turn.state.attempts) == ("postcode", 1)
    turn = flows.advance(flows.advance(turn.state, Digits("")).state, Digits("12"))
    assert dial_of(turn).meldkamer == "MN"  # the third attempt was the last
    assert "no valid postcode after 3 attempts" in record_of(db, turn).routing_reason


def test_an_unknown_postcode_typed_ahead_is_named_and_asked_again(flows):
    turn = greeted(flows, "1004")
    assert steps_text(turn.steps)[0] == "say[nl]: Deze postcode is bij ons niet bekend."
    assert turn.state.attempts == 1


@pytest.mark.parametrize("keys", ["", "#", "**", "*#"])
def test_no_digits_during_the_greeting_ask_for_the_postcode(flows, keys):
    turn = greeted(flows, keys)
    assert steps_text(turn.steps)[-1] == "gather: 4 digit(s), 8 s, ends on #"
    assert (turn.state.stage, turn.state.attempts) == ("postcode", 0)
    assert turn.state.language == ("en" if keys.startswith("*") else "nl")


@pytest.mark.parametrize("keys", ["3441", "*3441", "12"])
def test_a_caller_routed_by_an_action_keeps_its_meldkamer_whatever_they_key(
        db, flows, sent_action, keys):
    caller = Incoming(transport="test", call_id="CA-keys", caller="+31690004242",
                      called="+31800001100")
    turn = greeted(flows, keys, caller)  # 3441 lies in region Utrecht (MN)
    assert dial_of(turn).meldkamer == "RT"
    assert "Missing girl Sanne" in steps_text(turn.steps)[0]
    reason = record_of(db, turn).routing_reason
    assert reason.startswith("action") and reason.endswith(
        f"keys {keys.lstrip('*')} during the greeting not used")


def test_a_caller_located_by_the_network_keeps_that_meldkamer(db, flows):
    located = Incoming(transport="test", call_id="CA-located", caller="anonymous",
                       called="+31800001100", lat=51.9225, lon=4.4792)  # Rotterdam
    turn = greeted(flows, "3441", located)
    assert dial_of(turn).meldkamer == "RT"
    assert record_of(db, turn).routing_reason.startswith("coordinates")


def test_a_postcode_typed_ahead_beats_the_registered_home(db, flows, registered_caller):
    caller = Incoming(transport="test", call_id="CA-home", caller="+31690005353",
                      called="+31800001100")
    home = greeted(flows, "", caller)
    assert dial_of(home).meldkamer == "DH"
    assert record_of(db, home).routing_reason.startswith("participant_location")

    turn = greeted(flows, "3011#", caller)
    assert dial_of(turn).meldkamer == "RT"
    record = record_of(db, turn)
    assert record.routing_reason.startswith("postcode: keyed postcode 3011")
    assert record.routing_reason.endswith("instead of the registered place")
    assert record.participant_id == registered_caller.id


def test_a_wrong_postcode_typed_ahead_leaves_the_registered_home(db, flows, registered_caller):
    caller = Incoming(transport="test", call_id="CA-home2", caller="+31690005353",
                      called="+31800001100")
    turn = greeted(flows, "1004", caller)  # not in use: no reason to make the caller retry
    assert dial_of(turn).meldkamer == "DH"
    assert record_of(db, turn).routing_reason.endswith("keys 1004 during the greeting not used")


KEYS = st.text(alphabet="0123456789*#", max_size=8)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(caller=st.sampled_from(["anonymous", "+31690004242", "+31690005353"]), greeting=KEYS,
       attempts=st.lists(KEYS, min_size=3, max_size=3))
def test_any_keys_end_put_through_or_asked_again_within_three_attempts(
        db, flows, sent_action, registered_caller, caller, greeting, attempts):
    call_id = f"CA-any-{uuid.uuid4().hex}"  # a call of its own: the same id is the same call
    turn = greeted(flows, greeting, Incoming(transport="test", call_id=call_id, caller=caller,
                                             called="+31800001100"))
    for keys in attempts:
        if isinstance(turn.waits_for, Dial):
            break
        gather = turn.waits_for
        assert isinstance(gather, Gather) and turn.state.stage == "postcode"
        assert gather.max_digits == 4 and not gather.lead_keys
        turn = flows.advance(turn.state, Digits(keys))
    dial = dial_of(turn)
    record = record_of(db, turn)
    assert record.meldkamer.code == dial.meldkamer and record.outcome == "routing"
    if caller == "+31690004242":
        assert dial.meldkamer == "RT" and record.routing_reason.startswith("action")
