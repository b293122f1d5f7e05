"""Starting from the web or the API: the action goes live at once, a worker writes its outbox."""

from collections import Counter

from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.models import (
    ActionKind,
    ActionStatus,
    AuditEvent,
    Channel,
    Delivery,
    DeliveryStatus,
    Participant,
    ParticipantStatus,
)
from outbound.actions import start_in_background
from outbound.fanout import preview_action
from outbound.queues import OUTBOX_QUEUE
from tests.outbound.conftest import NOW, POPULATION


def _deliveries(db: Session, action_id: int) -> int:
    return db.scalar(select(func.count(Delivery.id)).where(Delivery.action_id == action_id))


def test_a_background_start_goes_live_at_once_and_a_worker_sends_everything_once(
        db: Session, sessions, population, make_action, runtime, work, fake_twilio) -> None:
    action = make_action()
    expected = preview_action(db, action, NOW)
    assert start_in_background(sessions, runtime.redis, action.id, now=NOW, actor="api:test")
    db.refresh(action)
    assert action.status == ActionStatus.ACTIVE and action.outbox_done_at is None
    assert _deliveries(db, action.id) == 0
    assert Queue(OUTBOX_QUEUE, connection=runtime.redis, serializer=JSONSerializer).count == 1
    assert not start_in_background(sessions, runtime.redis, action.id, now=NOW)
    work()
    db.expire_all()
    db.refresh(action)
    assert action.outbox_done_at is not None
    deliveries = db.scalars(select(Delivery).where(Delivery.action_id == action.id)).all()
    assert Counter(d.channel for d in deliveries) == expected.by_channel
    assert {d.status for d in deliveries} == {DeliveryStatus.SENT}
    by_twilio = [d for d in deliveries if d.channel in (Channel.SMS, Channel.VOICE)]
    assert sorted(r.sid for r in fake_twilio.fake.records) == \
        sorted(d.provider_id for d in by_twilio)
    starts = db.scalars(select(AuditEvent.actor).where(
        AuditEvent.verb == "start", AuditEvent.object_id == str(action.id))).all()
    assert starts == ["api:test"]


def test_a_repeated_outbox_job_adds_nothing(db: Session, sessions, population, make_action,
                                            runtime, work) -> None:
    action = make_action()
    start_in_background(sessions, runtime.redis, action.id, now=NOW)
    work()
    written = _deliveries(db, action.id)
    from outbound.queues import enqueue_outbox

    enqueue_outbox(runtime.redis, action.id)
    work()
    assert _deliveries(db, action.id) == written > 0


def test_a_national_amber_alert_reaches_every_verified_participant(
        db: Session, sessions, population, make_action, runtime, work) -> None:
    action = make_action(kind=ActionKind.AMBER)
    action.national = True
    db.commit()
    expected = preview_action(db, action, NOW)
    verified = {p.phone for p in POPULATION if p.status == ParticipantStatus.VERIFIED}
    assert expected.participants == len(verified)
    start_in_background(sessions, runtime.redis, action.id, now=NOW)
    work()
    reached = db.scalars(select(Participant.phone).join(
        Delivery, Delivery.participant_id == Participant.id).where(
        Delivery.action_id == action.id).distinct()).all()
    assert set(reached) == verified  # in Amsterdam, Groningen and Maastricht too
