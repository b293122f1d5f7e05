"""The call flows as transcripts: what the caller hears, where the call goes, what is recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
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
    Meldkamer,
    Organisation,
    OrganisationKind,
    Participant,
    ParticipantStatus,
    Urgency,
)
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
    assert isinstance(gather, Gather) and gather.max_digits == 1
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


def test_nine_switches_the_call_to_english(flows):
    turn = flows.advance(flows.start_free(WITHHELD).state, Digits("9"))
    gather = turn.waits_for
    assert isinstance(gather, Gather) and gather.prompts[-1].language == "en"
    assert "postcode" in gather.prompts[-1].text


def test_a_caller_who_was_sent_an_action_is_announced_and_put_through(db, flows, sent_action):
    turn = flows.start_free(Incoming(transport="test", call_id="CA-known",
                                     caller="0690004242", called="+31800001100"))
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
