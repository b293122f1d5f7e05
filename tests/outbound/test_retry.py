from datetime import timedelta

import pytest
import redis
from rq import Queue
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Channel, Delivery, DeliveryStatus
from outbound.callbacks import apply_status
from outbound.fanout import start_action
from outbound.queues import Batch, enqueue, schedule
from outbound.reclaim import requeue_orphans
from outbound.retry import MAX_ATTEMPTS, backoff
from tests.outbound.conftest import NOW


@pytest.fixture
def started(db: Session, sessions, population, make_action):
    action = make_action()
    result = start_action(sessions, action.id, now=NOW)
    db.commit()
    return action, result


def _one(db: Session, action, channel: Channel) -> Delivery:
    return db.scalar(select(Delivery).where(Delivery.action_id == action.id,
                                            Delivery.channel == channel)
                     .order_by(Delivery.id).limit(1))


def _voice_only(db: Session, action) -> Delivery:
    """A voice delivery of a participant who has no SMS delivery in this action."""
    sms = select(Delivery.participant_id).where(Delivery.action_id == action.id,
                                                Delivery.channel == Channel.SMS)
    call = _one(db, action, Channel.VOICE)
    db.execute(Delivery.__table__.delete().where(
        Delivery.participant_id == call.participant_id, Delivery.channel == Channel.SMS,
        Delivery.action_id == action.id))
    assert call.participant_id not in set(db.scalars(sms))
    return call


def _waiting(connection: redis.Redis, name: str) -> int:
    """Jobs on the queue now or held by the scheduler for later."""
    queue = Queue(name, connection=connection, serializer=JSONSerializer)
    return queue.count + ScheduledJobRegistry(queue=queue).count


def test_backoff_grows_with_jitter_and_a_cap() -> None:
    assert all(backoff(1) <= timedelta(seconds=5) for _ in range(50))
    assert max(backoff(4) for _ in range(200)) > timedelta(seconds=20)
    assert all(backoff(30) <= timedelta(minutes=5) for _ in range(50))


def test_a_busy_call_is_tried_again_later(db: Session, started, redis_client) -> None:
    action, _ = started
    call = _one(db, action, Channel.VOICE)
    call.status, call.attempts, call.provider_id = DeliveryStatus.SENT, 1, "CA1"
    db.commit()
    again = apply_status(db, "CA1", "busy", NOW)
    db.commit()
    assert again == [call.id]
    assert call.status == DeliveryStatus.QUEUED and call.next_attempt_at > NOW
    schedule(redis_client, db, again)
    assert _waiting(redis_client, "voice-urgent") == 1


def test_the_last_failed_call_becomes_an_sms(db: Session, started) -> None:
    action, _ = started
    call = _voice_only(db, action)
    call.status, call.attempts = DeliveryStatus.SENT, MAX_ATTEMPTS[Channel.VOICE]
    call.provider_id = "CA2"
    db.commit()
    [backup_id] = apply_status(db, "CA2", "no-answer", NOW)
    db.commit()
    backup = db.get(Delivery, backup_id)
    assert call.status == DeliveryStatus.FAILED and call.provider_error == "no-answer"
    assert backup.channel == Channel.SMS and backup.status == DeliveryStatus.QUEUED
    assert backup.participant_id == call.participant_id


def test_no_failover_sms_when_the_participant_already_has_one(db: Session, started) -> None:
    action, _ = started
    call = db.scalar(select(Delivery).where(
        Delivery.action_id == action.id, Delivery.channel == Channel.VOICE,
        Delivery.participant_id.in_(select(Delivery.participant_id).where(
            Delivery.action_id == action.id, Delivery.channel == Channel.SMS)))
        .order_by(Delivery.id).limit(1))
    call.status, call.attempts, call.provider_id = DeliveryStatus.SENT, 3, "CA3"
    db.commit()
    assert apply_status(db, "CA3", "busy", NOW) == []
    assert call.status == DeliveryStatus.FAILED


def test_a_permanent_failure_is_not_retried(db: Session, started) -> None:
    action, _ = started
    sms = _one(db, action, Channel.SMS)
    sms.status, sms.attempts, sms.provider_id = DeliveryStatus.SENT, 1, "SM4"
    db.commit()
    assert apply_status(db, "SM4", "undelivered", NOW, error="30003") == []
    assert sms.status == DeliveryStatus.FAILED


def test_calls_that_keep_failing_at_the_provider_end_as_an_sms(
        db: Session, started, runtime, work, fake_twilio, steady_backoff) -> None:
    action, result = started
    call = _voice_only(db, action)
    db.commit()
    fake_twilio.fake.behaviour.error_rate = 1.0
    for _attempt in range(MAX_ATTEMPTS[Channel.VOICE]):
        db.execute(Delivery.__table__.update().where(Delivery.id == call.id)
                   .values(next_attempt_at=None))
        db.commit()
        enqueue(runtime.redis, [b for b in result.batches if b.queue == "voice-urgent"])
        work()
        db.refresh(call)
    assert call.status == DeliveryStatus.FAILED and call.attempts == 3
    backup = db.scalar(select(Delivery).where(Delivery.action_id == action.id,
                                              Delivery.participant_id == call.participant_id,
                                              Delivery.channel == Channel.SMS))
    assert backup is not None and backup.status == DeliveryStatus.QUEUED


def test_queued_deliveries_without_a_job_are_enqueued_by_the_sweep(
        db: Session, started, runtime) -> None:
    action, result = started
    assert requeue_orphans(runtime, NOW + timedelta(minutes=1)) == 0  # too young
    assert requeue_orphans(runtime, NOW + timedelta(minutes=10)) == result.deliveries
    queued = [delivery_id for n in ("voice-urgent", "sms-urgent", "push-urgent")
              for job in Queue(n, connection=runtime.redis, serializer=JSONSerializer).jobs
              for delivery_id in job.args[0]]
    assert sorted(queued) == sorted(db.scalars(select(Delivery.id).where(
        Delivery.action_id == action.id)))


def test_a_job_held_for_later_keeps_its_retries_and_lifetimes(
        redis_client: redis.Redis) -> None:
    """A batch held by RQ's scheduler (a backoff, quiet hours) is the same job as one queued
    at once: it is retried after an error and its record outlives a failure for a week."""
    enqueue(redis_client, [Batch("sms-normal", (7, 8))])
    enqueue(redis_client, [Batch("sms-normal", (9, 10))], delay=600)
    target = Queue("sms-normal", connection=redis_client, serializer=JSONSerializer)
    [now] = target.get_jobs()
    [held_id] = ScheduledJobRegistry(queue=target).get_job_ids()
    held = target.fetch_job(held_id)
    assert held is not None and held.args == [[9, 10]]
    for job in (now, held):
        assert (job.retries_left, job.retry_intervals) == (3, [5, 30, 120])
        assert (job.result_ttl, job.failure_ttl) == (3600, 7 * 86400)
