import json
import multiprocessing
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from urllib.request import urlopen
from zoneinfo import ZoneInfo

import pytest
import redis
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.models import (
    ActionKind,
    ActionStatus,
    Channel,
    Delivery,
    DeliveryStatus,
    Language,
    Participant,
    ParticipantStatus,
    Urgency,
)
from core.targeting import preview
from fakes.twilio import FakeTwilioServer
from outbound.fanout import BATCH_SIZE, area_of, preview_action, start_action
from outbound.queues import enqueue
from outbound.templates import alert_text
from tests.outbound.conftest import BY_PHONE, NEIGHBOURS, NOW
from tests.outbound.senders import reserve_many, send_through_window


def _records(server: FakeTwilioServer) -> list[dict]:
    with urlopen(f"{server.url}/_fake/records") as reply:
        return json.load(reply)["records"]


def test_starting_writes_one_delivery_per_recipient_and_channel_once(
        db: Session, sessions, population, make_action) -> None:
    action = make_action()
    expected = preview(db, area_of(action), Urgency.URGENT, NOW)
    first = start_action(sessions, action.id, now=NOW)
    db.commit()
    assert first.started and first.deliveries == expected.messages > 0
    db.refresh(action)
    assert action.status == ActionStatus.ACTIVE and action.outbox_done_at is not None
    by_channel = Counter(db.scalars(select(Delivery.channel)
                                    .where(Delivery.action_id == action.id)))
    assert by_channel == expected.by_channel
    assert all(len(b.delivery_ids) <= BATCH_SIZE for b in first.batches)
    assert {b.queue for b in first.batches} <= {"voice-urgent", "sms-urgent", "push-urgent"}
    again = start_action(sessions, action.id, now=NOW)
    assert not again.started and again.batches == []
    assert db.scalar(select(func.count(Delivery.id))
                     .where(Delivery.action_id == action.id)) == first.deliveries


def test_non_urgent_messages_go_to_the_normal_queues(db: Session, sessions, population,
                                                     make_action) -> None:
    action = make_action(kind=ActionKind.PREVENTIVE, urgency=Urgency.NORMAL)
    result = start_action(sessions, action.id, now=NOW)
    assert {b.queue.split("-")[1] for b in result.batches} == {"normal"}


def test_every_sms_and_call_reaches_the_provider_exactly_once(
        db: Session, sessions, population, make_action, runtime, work, fake_twilio) -> None:
    action = make_action()
    result = start_action(sessions, action.id, now=NOW)
    db.commit()
    enqueue(runtime.redis, result.batches)
    enqueue(runtime.redis, result.batches)  # a duplicate enqueue must not send twice
    work()
    records = _records(fake_twilio)
    sms = [r for r in records if r["kind"] == "message"]
    calls = [r for r in records if r["kind"] == "call"]
    deliveries = db.scalars(select(Delivery).where(Delivery.action_id == action.id)).all()
    by_channel = Counter(d.channel for d in deliveries)
    assert len(sms) == by_channel[Channel.SMS] and len(calls) == by_channel[Channel.VOICE]
    assert len({r["to"] for r in sms}) == len(sms)
    assert {d.status for d in deliveries} == {DeliveryStatus.SENT}
    assert all(d.provider_id and d.attempts == 1 for d in deliveries)
    assert {d.provider_id for d in deliveries if d.channel == Channel.SMS} == \
        {r["sid"] for r in sms}
    languages = {r["to"]: BY_PHONE[r["to"]].language for r in sms}
    assert set(languages.values()) == {Language.NL, Language.EN}
    for record in sms:  # each in the language of its recipient
        english = languages[record["to"]] == Language.EN
        assert record["body"].endswith("Call 0800-0011 free of charge." if english
                                       else "Gezien? Bel gratis 0800-0011."), record


def test_provider_errors_are_retried_or_failed_as_they_say(
        db: Session, sessions, population, make_action, runtime, work, fake_twilio,
        steady_backoff) -> None:
    fake_twilio.fake.behaviour.error_rate = 1.0
    action = make_action()
    result = start_action(sessions, action.id, now=NOW)
    db.commit()
    enqueue(runtime.redis, result.batches)
    work()
    deliveries = db.scalars(select(Delivery).where(Delivery.action_id == action.id,
                                                   Delivery.channel == Channel.SMS)).all()
    assert {d.status for d in deliveries} == {DeliveryStatus.QUEUED}
    assert [(d.attempts, d.provider_error) for d in deliveries
            if d.attempts != 1 or "http_500" not in d.provider_error] == []
    assert all(d.next_attempt_at is not None for d in deliveries)
    assert _records(fake_twilio) == []


def test_an_invalid_number_fails_for_good(db: Session, sessions, population, make_action, runtime,
                                          work, fake_twilio) -> None:
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
    db.refresh(victim)
    assert victim.status == DeliveryStatus.FAILED
    assert "21211" in victim.provider_error


def test_a_participant_who_stopped_after_the_start_gets_nothing(
        db: Session, sessions, population, make_action, runtime, work, fake_twilio) -> None:
    action = make_action()
    result = start_action(sessions, action.id, now=NOW)
    db.commit()
    quitter = db.scalar(select(Delivery).where(Delivery.action_id == action.id,
                                               Delivery.channel == Channel.SMS)
                        .order_by(Delivery.id).limit(1))
    person = db.get(Participant, quitter.participant_id)
    person.status = ParticipantStatus.STOPPED
    db.commit()
    enqueue(runtime.redis, result.batches)
    work()
    db.refresh(quitter)
    assert quitter.status == DeliveryStatus.SKIPPED
    assert person.phone not in {r["to"] for r in _records(fake_twilio)}


def test_english_speakers_get_english_with_dutch_where_english_is_missing(
        db: Session, make_action) -> None:
    action = make_action()
    text = alert_text(action, Language.EN, "0800-0011")
    assert text.startswith("Burgernet: Man in red coat. Ongeveer 30 jaar.")
    assert text.endswith("Call 0800-0011 free of charge.")


def test_the_rate_holds_across_processes(redis_client: redis.Redis, redis_server) -> None:
    context = multiprocessing.get_context("spawn")
    results, ready = context.Queue(), context.Barrier(4)
    workers = [context.Process(target=reserve_many,
                               args=(redis_server.url, 100.0, 50, results, ready))
               for _ in range(4)]
    for process in workers:
        process.start()
    slots = sorted(s for _ in workers for s in results.get(timeout=120))
    for process in workers:
        process.join(10)
    gaps = [b - a for a, b in zip(slots, slots[1:], strict=False)]
    assert len(slots) == 200
    assert min(gaps) == pytest.approx(0.01, abs=1e-5)  # never two slots within 1/rate


def test_no_sliding_second_holds_more_than_the_rate_whatever_the_workers_do(
        redis_client: redis.Redis, redis_server) -> None:
    """Four eager senders (no schedule at all) against one window of 20 a second."""
    context = multiprocessing.get_context("spawn")
    results, ready = context.Queue(), context.Barrier(4)
    workers = [context.Process(target=send_through_window,
                               args=(redis_server.url, 15, results, ready)) for _ in range(4)]
    for process in workers:
        process.start()
    sent = sorted(t for _ in workers for t in results.get(timeout=120))
    for process in workers:
        process.join(10)
    assert len(sent) == 60
    busiest = max(sum(1 for t in sent if start <= t < start + 1.0) for start in sent)
    assert busiest <= 20
    assert sent[-1] - sent[0] < 3.5  # and the window does not hold back more than it must


def test_the_call_cap_holds_across_workers_and_frees_when_calls_end(
        redis_client: redis.Redis) -> None:
    from outbound.throttle import CallSlots

    first = CallSlots(redis_client, "trunk", limit=2)
    second = CallSlots(redis_client, "trunk", limit=2)  # another worker, same trunk
    assert first.acquire("delivery:1") and second.acquire("delivery:2")
    assert not first.acquire("delivery:3")
    assert first.acquire("delivery:1")  # holding a slot already is not a second slot
    second.release("delivery:2")
    assert first.acquire("delivery:3") and first.busy() == 2
    later = time.time() + 601  # a call whose end we never heard of stops counting
    assert second.acquire("delivery:4", now=later)
    assert CallSlots(redis_client, "other-trunk", limit=0).acquire("x")


def test_the_first_batches_are_queued_before_the_outbox_is_complete(
        db: Session, sessions, population, make_action, monkeypatch) -> None:
    import core.targeting

    monkeypatch.setattr(core.targeting, "BATCH", 10)  # many small chunks
    action = make_action()
    seen: list[tuple[int, object]] = []

    def dispatch(batches) -> None:
        with sessions() as session:
            done = session.get(type(action), action.id).outbox_done_at
        seen.append((sum(len(b.delivery_ids) for b in batches), done))

    result = start_action(sessions, action.id, now=NOW, dispatch=dispatch)
    assert len(seen) > 1 and seen[0][1] is None  # queued while the rest was being written
    assert sum(n for n, _ in seen) == result.deliveries



#: 23:30 in Amsterdam: the night owls among the neighbours are in their quiet hours.
NIGHT = datetime(2026, 11, 23, 23, 30, tzinfo=ZoneInfo("Europe/Amsterdam"))


@pytest.mark.parametrize(("kind", "urgency", "channels"), [
    (ActionKind.SUSPECT, Urgency.URGENT, {Channel.VOICE, Channel.SMS, Channel.PUSH}),
    (ActionKind.AMBER, Urgency.URGENT, set(Channel)),
    (ActionKind.NEIGHBOURHOOD_INQUIRY, Urgency.NORMAL, {Channel.EMAIL}),
    (ActionKind.PREVENTIVE, Urgency.NORMAL, {Channel.EMAIL, Channel.PUSH}),
])
def test_the_preview_and_the_start_agree_for_every_kind(
        db: Session, sessions, population, make_action, kind, urgency, channels) -> None:
    action = make_action(kind=kind, urgency=urgency, radius_m=8000)
    expected = preview_action(db, action, NIGHT)
    result = start_action(sessions, action.id, now=NIGHT)
    deliveries = db.scalars(select(Delivery).where(Delivery.action_id == action.id)).all()
    assert result.deliveries == expected.messages == len(deliveries) > 0
    assert Counter(d.channel for d in deliveries) == expected.by_channel
    assert set(expected.by_channel) == channels
    held = Counter(d.channel for d in deliveries if d.next_attempt_at is not None)
    assert held == expected.held
    if urgency == Urgency.URGENT:
        assert not held
    else:
        assert held  # the night owls wait for seven o'clock
        local_seven = NIGHT.replace(day=24, hour=7, minute=0)
        assert {d.next_attempt_at for d in deliveries if d.next_attempt_at} == {local_seven}
        assert {b.not_before for b in result.batches} == {None, local_seven}


def test_held_batches_wait_in_the_scheduler_until_quiet_hours_end(
        db: Session, sessions, population, make_action, runtime, work, redis_client) -> None:
    action = make_action(kind=ActionKind.PREVENTIVE, urgency=Urgency.NORMAL, radius_m=8000)
    local = datetime.now(ZoneInfo("Europe/Amsterdam"))
    window = [(local - timedelta(hours=1)).strftime("%H:%M"),
              (local + timedelta(hours=2)).strftime("%H:%M")]
    sleepers = [p.phone for p in NEIGHBOURS if p.email and p.number % 2 == 0]
    assert 0 < len(sleepers) < len([p for p in NEIGHBOURS if p.email])
    db.execute(update(Participant).values(quiet_hours={}))
    db.execute(update(Participant).where(Participant.phone.in_(sleepers))
               .values(quiet_hours={"email": window}))
    db.commit()
    result = start_action(sessions, action.id, now=datetime.now(UTC))
    held = [b for b in result.batches if b.not_before is not None]
    assert held and all(b.queue == "email-normal" for b in held)
    enqueue(runtime.redis, result.batches)
    scheduled = ScheduledJobRegistry("email-normal", connection=redis_client,
                                     serializer=JSONSerializer)
    assert scheduled.count == len(held)
    work()
    waiting = {i for b in held for i in b.delivery_ids}
    statuses = dict(db.execute(select(Delivery.id, Delivery.status)
                               .where(Delivery.action_id == action.id)).all())
    assert {statuses[i] for i in waiting} == {DeliveryStatus.QUEUED}
    assert {s for i, s in statuses.items() if i not in waiting} == {DeliveryStatus.SENT}
