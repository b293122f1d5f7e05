"""A carrier refusing service as a whole: the sender holds back (a circuit breaker per provider
and channel) and the messages wait for it without counting attempts."""

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.metrics import Metrics
from core.models import Channel, Delivery, DeliveryStatus
from fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilioServer
from outbound.breaker import OPEN_FIRST, OPEN_MOST, TRIP_AFTER, Breakers
from outbound.fanout import start_action
from outbound.jobs import send_batch
from outbound.providers import Message, ProviderError
from outbound.providers.twilio_rest import TwilioRestProvider
from outbound.retry import PATIENCE
from outbound.runtime import Runtime


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _breakers() -> tuple[Breakers, _Clock, Metrics]:
    clock, metrics = _Clock(), Metrics()
    return Breakers(metrics, clock=clock, wall=lambda: clock.now + 1000), clock, metrics


def _sample(metrics: Metrics, name: str) -> float:
    return metrics.registry.get_sample_value(name, {"provider": "twilio", "channel": "sms"}) \
        or 0.0


def test_refusals_in_a_row_open_it_for_longer_each_time_up_to_a_cap() -> None:
    breakers, clock, metrics = _breakers()
    for _ in range(TRIP_AFTER - 1):
        assert breakers.refused("twilio", "sms") is None
    assert breakers.held_until("twilio", "sms") is None
    assert breakers.refused("twilio", "sms") == clock.now + 1000 + OPEN_FIRST
    assert breakers.held_until("twilio", "sms") == clock.now + 1000 + OPEN_FIRST
    assert breakers.held_until("twilio", "voice") is None  # each channel its own
    # sends that began before it opened learn nothing new
    assert breakers.refused("twilio", "sms") == clock.now + 1000 + OPEN_FIRST
    periods = []
    for _ in range(6):
        clock.now = breakers._states[("twilio", "sms")].until  # the probe fails
        assert breakers.held_until("twilio", "sms") is None
        periods.append(breakers.refused("twilio", "sms") - 1000 - clock.now)
    assert periods == [2 * OPEN_FIRST, 4 * OPEN_FIRST, 8 * OPEN_FIRST] + [OPEN_MOST] * 3
    assert _sample(metrics, "burgernet_provider_breaker_trips_total") == 7
    assert _sample(metrics, "burgernet_provider_breaker_open") == 1


def test_an_answer_closes_it() -> None:
    breakers, clock, metrics = _breakers()
    for _ in range(TRIP_AFTER):
        breakers.refused("twilio", "sms")
    clock.now += OPEN_FIRST
    breakers.answered("twilio", "sms")
    assert _sample(metrics, "burgernet_provider_breaker_open") == 0
    assert breakers.refused("twilio", "sms") is None  # counting from nothing again


@pytest.mark.parametrize(("status", "unavailable"), [(503, True), (429, True), (500, False)])
def test_the_carrier_says_whether_it_refuses_service_as_a_whole(
        fake_twilio: FakeTwilioServer, runtime: Runtime, status: int,
        unavailable: bool) -> None:
    behaviour = fake_twilio.fake.behaviour
    behaviour.outage = status == 503
    behaviour.throttle_rate = 1.0 if status == 429 else 0.0
    behaviour.error_rate = 1.0 if status == 500 else 0.0

    async def send() -> None:
        provider = TwilioRestProvider(ACCOUNT_SID, AUTH_TOKEN, "+31690000999",
                                      base_url=fake_twilio.url)
        try:
            await provider.send(Message(1, Channel.SMS, "+31612345678", "Tekst.", "nl"))
        finally:
            await provider.close()

    with pytest.raises(ProviderError) as caught:
        runtime.run(send())
    assert caught.value.code == f"http_{status}" and caught.value.retryable
    assert caught.value.unavailable is unavailable


def _sms(db: Session, sessions, make_action) -> list[int]:
    action = make_action()
    result = start_action(sessions, action.id, now=datetime.now(UTC))
    db.commit()
    [batch] = [b for b in result.batches if b.queue == "sms-urgent"]
    return list(batch.delivery_ids)


def _deliveries(db: Session, ids: list[int]) -> list[Delivery]:
    db.expire_all()
    return list(db.scalars(select(Delivery).where(Delivery.id.in_(ids))))


def test_an_outage_holds_the_sends_back_and_counts_no_attempt(
        db: Session, sessions, population, make_action, runtime: Runtime,
        fake_twilio: FakeTwilioServer) -> None:
    runtime.settings = replace(runtime.settings, sms_rate=10.0)  # paced: 100 ms apart
    ids = _sms(db, sessions, make_action)
    assert len(ids) > 2 * TRIP_AFTER
    fake_twilio.fake.behaviour.outage = True
    counts = send_batch(runtime, ids)
    assert counts["claimed"] == len(ids) and counts["retry"] == len(ids)
    # the breaker opened after the third refusal; a send already under way may add one
    assert TRIP_AFTER <= fake_twilio.fake.unavailable <= TRIP_AFTER + 1
    deliveries = _deliveries(db, ids)
    assert {(d.status, d.attempts) for d in deliveries} == {(DeliveryStatus.QUEUED, 0)}
    assert all("provider_unavailable" in (d.provider_error or "") for d in deliveries)
    held = [d for d in deliveries if "breaker open" in (d.provider_error or "")]
    assert len(held) >= len(ids) - TRIP_AFTER - 1
    # each due when the breaker closed again: one moment per opening, at most OPEN_MOST on
    due = {d.next_attempt_at.replace(tzinfo=UTC) for d in held}
    assert len(due) <= _sample(runtime.metrics, "burgernet_provider_breaker_trips_total")
    assert max(due) <= datetime.fromtimestamp(time.time() + OPEN_MOST, UTC)
    assert runtime.metrics.registry.get_sample_value(
        "burgernet_sends_held_back_total", {"provider": "twilio", "channel": "sms"}) \
        == len(held)

    fake_twilio.fake.behaviour.outage = False
    last = max(d.next_attempt_at.replace(tzinfo=UTC) for d in deliveries)
    time.sleep(max(0.0, last.timestamp() - time.time()))
    assert send_batch(runtime, ids)["sent"] == len(ids)
    assert {(d.status, d.attempts) for d in _deliveries(db, ids)} == {(DeliveryStatus.SENT, 1)}
    assert len(fake_twilio.fake.records) == len(ids)


def test_past_its_patience_a_refusal_counts_as_a_failed_attempt(
        db: Session, sessions, population, make_action, runtime: Runtime,
        fake_twilio: FakeTwilioServer, steady_backoff) -> None:
    ids = _sms(db, sessions, make_action)[:1]
    db.execute(update(Delivery).where(Delivery.id.in_(ids)).values(
        created_at=datetime.now(UTC) - PATIENCE - timedelta(minutes=1)))
    db.commit()
    fake_twilio.fake.behaviour.outage = True
    send_batch(runtime, ids)
    [delivery] = _deliveries(db, ids)
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.QUEUED, 1)
    assert "503" in (delivery.provider_error or "")


def test_a_provider_holds_as_many_connections_as_a_batch_has_sends_in_flight() -> None:
    """Fewer, and sends the rate let go would wait for a connection and leave in a burst."""
    from outbound.providers.twilio_rest import CONNECTIONS
    from outbound.sender import MAX_IN_FLIGHT

    assert CONNECTIONS >= MAX_IN_FLIGHT
