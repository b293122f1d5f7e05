"""What a send counts, and the shared state read at scrape time from Redis and the database."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import redis
from rq import Worker
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.metrics import Metrics, exposition
from core.models import (
    Channel,
    Delivery,
    DeliveryStatus,
    Language,
    Participant,
    ParticipantStatus,
)
from core.participants import CodeToSend
from core.redis_server import free_port
from outbound.codes import CodeRequests, seal, send_code
from outbound.fanout import start_action
from outbound.metrics import StateCollector, live_workers, queue_state
from outbound.queues import enqueue, queue
from outbound.runtime import Runtime
from tests.outbound.conftest import NOW


def _value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def _state(collector: StateCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in collector.collect() for sample in family.samples}


def test_a_send_counts_deliveries_provider_requests_and_waits(
        db: Session, sessions, population, make_action, runtime: Runtime, work) -> None:
    action = make_action()
    result = start_action(sessions, action.id, now=NOW)
    db.commit()
    quitter = db.scalar(select(Delivery).where(Delivery.action_id == action.id,
                                               Delivery.channel == Channel.SMS)
                        .order_by(Delivery.id).limit(1))
    db.get(Participant, quitter.participant_id).status = ParticipantStatus.STOPPED
    db.commit()
    enqueue(runtime.redis, result.batches)
    work()
    sent = Counter(d.channel.value for d in db.scalars(
        select(Delivery).where(Delivery.action_id == action.id,
                               Delivery.status == DeliveryStatus.SENT)))
    m = runtime.metrics
    assert sent["sms"] > 0 and sent["voice"] > 0
    for channel in ("sms", "voice"):
        assert _value(m, "burgernet_deliveries_total", channel=channel, purpose="alert",
                      status="sent") == sent[channel]
        assert _value(m, "burgernet_provider_requests_total", provider="twilio",
                      channel=channel, outcome="ok", error_code="") == sent[channel]
        assert _value(m, "burgernet_provider_request_seconds_count", provider="twilio",
                      channel=channel) == sent[channel]
        assert _value(m, "burgernet_rate_limit_wait_seconds_count",
                      channel=channel) == sent[channel]
    assert _value(m, "burgernet_deliveries_total", channel="sms", purpose="alert",
                  status="skipped") == 1


def test_provider_errors_are_counted_with_our_code(
        db: Session, sessions, population, make_action, runtime: Runtime, work, fake_twilio,
        steady_backoff) -> None:
    fake_twilio.fake.behaviour.error_rate = 1.0
    action = make_action()
    result = start_action(sessions, action.id, now=NOW)
    db.commit()
    enqueue(runtime.redis, result.batches)
    work()
    sms = len(db.scalars(select(Delivery).where(Delivery.action_id == action.id,
                                                Delivery.channel == Channel.SMS)).all())
    m = runtime.metrics
    assert _value(m, "burgernet_provider_requests_total", provider="twilio", channel="sms",
                  outcome="retry", error_code="http_500") == sms
    assert _value(m, "burgernet_deliveries_total", channel="sms", purpose="alert",
                  status="queued") == sms


def test_a_refused_number_fails_and_stays_out_of_the_labels(
        db: Session, sessions, population, make_action, runtime: Runtime, work) -> None:
    action = make_action()
    result = start_action(sessions, action.id, now=NOW)
    db.commit()
    victim = db.scalar(select(Delivery).where(Delivery.action_id == action.id,
                                              Delivery.channel == Channel.SMS)
                       .order_by(Delivery.id).limit(1))
    db.get(Participant, victim.participant_id).phone = "+3169"  # what the fake refuses
    db.commit()
    enqueue(runtime.redis, result.batches)
    work()
    m = runtime.metrics
    assert _value(m, "burgernet_provider_requests_total", provider="twilio", channel="sms",
                  outcome="failed", error_code="http_400") == 1
    assert _value(m, "burgernet_deliveries_total", channel="sms", purpose="alert",
                  status="failed") == 1
    text = exposition([m.registry]).decode()
    phones = {p.phone for p in db.scalars(select(Participant))}
    assert [phone for phone in phones if phone and phone.lstrip("+") in text] == []


def test_queue_depth_and_the_age_of_the_oldest_job(
        db: Session, sessions, population, make_action, runtime: Runtime) -> None:
    action = make_action()
    result = start_action(sessions, action.id, now=NOW)
    db.commit()
    enqueue(runtime.redis, result.batches)
    enqueue(runtime.redis, result.batches[:1], delay=600)  # a retry's backoff: scheduled
    later = datetime.now(UTC) + timedelta(seconds=40)
    state = {(s.name, s.labels["queue"]): s.value
             for family in queue_state(runtime.redis, later) for s in family.samples}
    by_queue = Counter(batch.queue for batch in result.batches)
    for name, jobs in by_queue.items():
        assert state[("burgernet_queue_jobs", name)] == jobs
        assert 40 <= state[("burgernet_queue_oldest_job_age_seconds", name)] < 100
    first = result.batches[0].queue
    assert state[("burgernet_queue_scheduled_jobs", first)] == 1
    assert state[("burgernet_queue_jobs", "email-normal")] == 0
    assert state[("burgernet_queue_oldest_job_age_seconds", "email-normal")] == 0


def test_the_oldest_job_is_the_one_a_worker_takes_next(redis_client: redis.Redis) -> None:
    urgent = queue(redis_client, "sms-urgent")
    urgent.enqueue("outbound.jobs.send_batch", [1], job_id="first")
    time.sleep(0.05)
    urgent.enqueue("outbound.jobs.send_batch", [2], job_id="second")
    now = datetime.now(UTC)
    ages = {s.labels["queue"]: s.value for family in queue_state(redis_client, now)
            if family.name == "burgernet_queue_oldest_job_age_seconds" for s in family.samples}
    first = urgent.fetch_job("first").enqueued_at
    assert abs(ages["sms-urgent"] - (now - first).total_seconds()) < 0.01


def test_the_outbox_backlog_counts_what_active_actions_still_have_to_send(
        db: Session, sessions, population, make_action, runtime: Runtime, work) -> None:
    collector = StateCollector(runtime)
    before = _state(collector)
    assert before[("burgernet_outbox_backlog", (("status", "queued"),))] == 0
    action = make_action()
    result = start_action(sessions, action.id, now=NOW)
    db.commit()
    during = _state(collector)
    assert during[("burgernet_outbox_backlog", (("status", "queued"),))] == result.deliveries
    assert during[("burgernet_active_actions", ())] == before[("burgernet_active_actions", ())] + 1
    enqueue(runtime.redis, result.batches)
    work()
    after = _state(collector)
    assert after[("burgernet_outbox_backlog", (("status", "queued"),))] == 0
    assert after[("burgernet_outbox_backlog", (("status", "sending"),))] == 0
    assert after[("burgernet_scrape_source_up", (("source", "database"),))] == 1
    assert after[("burgernet_scrape_source_up", (("source", "redis"),))] == 1


def test_workers_count_while_their_heartbeat_lasts(redis_client: redis.Redis) -> None:
    now = datetime.now(UTC)
    assert live_workers(redis_client, now) == 0
    worker = Worker([queue(redis_client, "sms-urgent")], connection=redis_client, name="w1")
    worker.register_birth()
    assert live_workers(redis_client, now) == 1
    assert live_workers(redis_client, now + timedelta(minutes=2)) == 0  # silent too long
    redis_client.delete(worker.key)  # what the key's expiry does to a killed worker
    assert live_workers(redis_client, now) == 0


def test_the_verification_codes_of_this_hour_against_their_budget(
        runtime: Runtime, redis_client: redis.Redis) -> None:
    settings = runtime.settings
    limits = CodeRequests(redis_client, settings.secret_key, budget=settings.code_sms_per_hour)
    assert limits.admit("+31612345001", "192.0.2.1") is None
    assert limits.admit("+31612345002", "192.0.2.2") is None
    state = _state(StateCollector(runtime))
    assert state[("burgernet_verification_sms_hour_used", ())] == 2
    assert state[("burgernet_verification_sms_hour_budget", ())] == settings.code_sms_per_hour
    hour_ago = time.time() - timedelta(hours=1).total_seconds()
    assert limits.spent(hour_ago) == 0


def test_an_unreachable_redis_is_reported_not_raised(runtime: Runtime) -> None:
    gone = Runtime(runtime.settings, runtime.engine, runtime.sessions,
                   redis.Redis(port=free_port(), socket_connect_timeout=1))
    state = _state(StateCollector(gone))
    assert state[("burgernet_scrape_source_up", (("source", "redis"),))] == 0
    assert state[("burgernet_scrape_source_up", (("source", "database"),))] == 1
    assert ("burgernet_outbox_backlog", (("status", "queued"),)) in state
    assert not any(name.startswith("burgernet_queue") for name, _labels in state)


def test_verification_sms_jobs_are_counted_by_outcome(runtime: Runtime) -> None:
    secret = runtime.settings.secret_key
    code = CodeToSend("+31612345003", "123456", Language.NL)
    assert send_code(runtime, seal(secret, code)) == {"sent": 1}
    assert send_code(runtime, seal(secret, code, at=time.time() - 3600))["expired"] == 1
    m = runtime.metrics
    assert _value(m, "burgernet_verification_sms_total", outcome="sent") == 1
    assert _value(m, "burgernet_verification_sms_total", outcome="expired") == 1
    assert _value(m, "burgernet_provider_requests_total", provider="twilio", channel="sms",
                  outcome="ok", error_code="") == 1
    assert _value(m, "burgernet_rate_limit_wait_seconds_count", channel="sms") == 1
    assert "612345003" not in exposition([m.registry]).decode()


def test_refusals_count_the_budgets_first_refusal_as_a_budget_one() -> None:
    metrics = Metrics()
    for reason in ("wait", "budget-first", "budget"):
        metrics.refused(reason)
    assert _value(metrics, "burgernet_verification_code_refusals_total", reason="budget") == 2
    assert _value(metrics, "burgernet_verification_code_refusals_total", reason="wait") == 1
