from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import (
    ActionKind,
    ActionStatus,
    Channel,
    Delivery,
    DeliveryPurpose,
    DeliveryStatus,
    Language,
    Outcome,
    Participant,
    ParticipantStatus,
    Urgency,
)
from outbound.fanout import ActionError, start_action
from outbound.feedback import end_action, quiet_until, write_update
from outbound.queues import enqueue
from outbound.templates import result_text, update_text
from tests.outbound.conftest import BY_PHONE, NOW


@pytest.fixture
def alerted(db: Session, sessions, population, make_action, runtime, work):
    """An action whose alert went out through the fake provider."""
    action = make_action()
    result = start_action(sessions, action.id, now=NOW)
    db.commit()
    enqueue(runtime.redis, result.batches)
    work()
    return action


def _results(db: Session, action) -> list[Delivery]:
    return db.scalars(select(Delivery).where(Delivery.action_id == action.id,
                                             Delivery.purpose == DeliveryPurpose.RESULT)).all()


def test_everyone_reached_gets_the_result_and_voice_becomes_sms(db: Session, alerted) -> None:
    alerts = db.scalars(select(Delivery).where(Delivery.action_id == alerted.id)).all()
    ending = end_action(db, alerted.id, Outcome.NOT_FOUND, "Bedankt voor het uitkijken.",
                        now=NOW)
    db.commit()
    results = _results(db, alerted)
    assert Channel.VOICE not in {r.channel for r in results}
    reached = {(d.participant_id, Channel.SMS if d.channel == Channel.VOICE else d.channel)
               for d in alerts}
    assert {(r.participant_id, r.channel) for r in results} == reached
    assert ending.results == len(results)
    assert db.get(type(alerted), alerted.id).status == ActionStatus.ENDED


def test_the_result_goes_out_through_the_same_machinery(db: Session, alerted, runtime, work,
                                                        fake_twilio) -> None:
    before = len(fake_twilio.fake.records)
    ending = end_action(db, alerted.id, Outcome.ARRESTED, None, now=NOW)
    db.commit()
    enqueue(runtime.redis, ending.batches)
    work()
    sms = [r for r in fake_twilio.fake.records[before:] if r.kind == "message"]
    assert {BY_PHONE[r.to].language for r in sms} == {Language.NL, Language.EN}
    for record in sms:  # each in the language of its recipient
        english = BY_PHONE[record.to].language == Language.EN
        assert ("arrested" if english else "aangehouden") in record.body, record.body
    assert {d.status for d in _results(db, alerted)} == {DeliveryStatus.SENT}


def test_those_not_reached_or_stopped_get_no_result(db: Session, alerted) -> None:
    failed, stopped = db.scalars(select(Delivery).where(
        Delivery.action_id == alerted.id, Delivery.channel == Channel.SMS)
        .order_by(Delivery.id).limit(2)).all()
    failed.status = DeliveryStatus.FAILED
    db.execute(Delivery.__table__.delete().where(
        Delivery.participant_id == failed.participant_id, Delivery.id != failed.id))
    db.get(Participant, stopped.participant_id).status = ParticipantStatus.STOPPED
    db.commit()
    end_action(db, alerted.id, Outcome.FOUND, None, now=NOW)
    who = {r.participant_id for r in _results(db, alerted)}
    assert failed.participant_id not in who and stopped.participant_id not in who


def test_a_voice_message_left_on_voicemail_counts_as_reached(db: Session, alerted) -> None:
    voice = db.scalars(select(Delivery).where(Delivery.action_id == alerted.id,
                                              Delivery.channel == Channel.VOICE)).first()
    assert voice is not None
    db.execute(Delivery.__table__.delete().where(
        Delivery.participant_id == voice.participant_id, Delivery.id != voice.id))
    voice.status = DeliveryStatus.VOICEMAIL
    db.commit()
    end_action(db, alerted.id, Outcome.FOUND, None, now=NOW)
    assert (voice.participant_id, Channel.SMS) in {
        (r.participant_id, r.channel) for r in _results(db, alerted)}


def test_an_action_ends_once(db: Session, alerted) -> None:
    end_action(db, alerted.id, Outcome.FOUND, None, now=NOW)
    db.commit()
    with pytest.raises(ActionError, match="not active"):
        end_action(db, alerted.id, Outcome.FOUND, None, now=NOW)


def test_a_result_waits_for_the_end_of_quiet_hours() -> None:
    night = datetime(2026, 11, 24, 2, 0, tzinfo=ZoneInfo("Europe/Amsterdam"))
    held = quiet_until(["23:00", "07:00"], night.astimezone(UTC))
    assert held == datetime(2026, 11, 24, 7, 0, tzinfo=ZoneInfo("Europe/Amsterdam"))
    assert quiet_until(["23:00", "07:00"], night + timedelta(hours=6)) is None
    assert quiet_until(None, night) is None


def test_results_read_in_both_languages(db: Session, alerted) -> None:
    alerted.outcome = Outcome.NOT_FOUND
    assert "helaas niet gevonden" in result_text(alerted, Language.NL)
    assert "has ended: not found, unfortunately" in result_text(alerted, Language.EN)


def test_held_results_are_not_sent_before_their_time(db: Session, alerted, runtime,
                                                     work) -> None:
    sms = db.scalars(select(Delivery.participant_id).where(
        Delivery.action_id == alerted.id, Delivery.channel == Channel.SMS)).all()
    local = datetime.now(ZoneInfo("Europe/Amsterdam"))
    window = [(local - timedelta(hours=1)).strftime("%H:%M"),
              (local + timedelta(hours=2)).strftime("%H:%M")]
    for pid in sms:
        db.get(Participant, pid).quiet_hours = {"sms": window}
    db.commit()
    ending = end_action(db, alerted.id, Outcome.FOUND, None, now=datetime.now(UTC))
    db.commit()
    assert len(ending.held) == len(set(sms))
    enqueue(runtime.redis, ending.batches)
    work()
    statuses = Counter(db.get(Delivery, i).status for i in ending.held)
    assert statuses == {DeliveryStatus.QUEUED: len(ending.held)}


def test_ending_withdraws_alerts_still_in_the_queue(db: Session, sessions, population,
                                                    make_action, runtime, work,
                                                    fake_twilio) -> None:
    action = make_action()
    started = start_action(sessions, action.id, now=NOW)
    ending = end_action(db, action.id, Outcome.CANCELLED, None, now=NOW)
    db.commit()
    assert ending.results == 0 and ending.batches == []
    assert ending.withdrawn == started.deliveries
    enqueue(runtime.redis, started.batches)  # jobs already on the queues find nothing to send
    work()
    statuses = {d.status for d in db.scalars(select(Delivery).where(
        Delivery.action_id == action.id))}
    assert statuses == {DeliveryStatus.SKIPPED}
    assert fake_twilio.fake.records == []


@pytest.fixture
def asked(db: Session, sessions, population, make_action, runtime, work):
    """A neighbourhood inquiry whose e-mails went out (to the console provider)."""
    action = make_action(kind=ActionKind.NEIGHBOURHOOD_INQUIRY, urgency=Urgency.NORMAL,
                         radius_m=8000)
    result = start_action(sessions, action.id, now=NOW)
    db.commit()
    enqueue(runtime.redis, result.batches)
    work()
    return action


def _updates(db: Session, action) -> list[Delivery]:
    return db.scalars(select(Delivery).where(Delivery.action_id == action.id,
                                             Delivery.purpose == DeliveryPurpose.UPDATE)).all()


def test_ending_an_inquiry_closes_it_without_a_result_message(db: Session, asked) -> None:
    ending = end_action(db, asked.id, Outcome.CANCELLED, None, now=NOW)
    db.commit()
    assert ending.results == 0 and ending.batches == [] and _results(db, asked) == []
    assert db.get(type(asked), asked.id).status == ActionStatus.ENDED


def test_the_update_goes_once_by_email_to_everyone_the_inquiry_reached(
        db: Session, asked, runtime, work) -> None:
    alerts = db.scalars(select(Delivery).where(Delivery.action_id == asked.id)
                        .order_by(Delivery.id)).all()
    missed = alerts[0]
    missed.status = DeliveryStatus.FAILED
    db.commit()
    ending = write_update(db, asked.id, "De man is gevonden.", "The man has been found.",
                          now=NOW)
    db.commit()
    updates = _updates(db, asked)
    assert {u.participant_id for u in updates} == \
        {a.participant_id for a in alerts if a.id != missed.id}
    assert {u.channel for u in updates} == {Channel.EMAIL} and ending.results == len(updates)
    enqueue(runtime.redis, ending.batches)
    work()
    db.expire_all()
    assert {u.status for u in _updates(db, asked)} == {DeliveryStatus.SENT}
    with pytest.raises(ActionError, match="already has its update"):
        write_update(db, asked.id, "Nog een keer.", None, now=NOW)
    assert len(_updates(db, asked)) == len(updates)


def test_an_update_reads_in_the_recipients_language(db: Session, asked) -> None:
    asked.update_nl, asked.update_en = "De man is gevonden.", None
    assert "De man is gevonden." in update_text(asked, Language.EN)
    assert update_text(asked, Language.NL).startswith(
        "Burgernet: nieuws over het buurtonderzoek 'Man in rode jas'.")
    asked.update_en = "The man has been found."
    assert "news about the neighbourhood inquiry 'Man in red coat'" in \
        update_text(asked, Language.EN)


def test_a_draft_inquiry_has_no_update_to_send(db: Session, make_action) -> None:
    draft = make_action(kind=ActionKind.NEIGHBOURHOOD_INQUIRY, urgency=Urgency.NORMAL)
    with pytest.raises(ActionError, match="not started"):
        write_update(db, draft.id, "Te vroeg.", None, now=NOW)
