"""Short leases renewed while a batch runs, and sends whose answer never came: looked up at
the provider before anything is sent again."""

import asyncio
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.models import Channel, Delivery, DeliveryStatus
from core.redis_server import free_port
from fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilioServer
from outbound.claim import LEASE, Lease, claim
from outbound.fanout import start_action
from outbound.outcomes import record
from outbound.providers import Message, ProviderError
from outbound.providers.twilio_rest import TwilioRestProvider
from outbound.queues import Batch, enqueue
from outbound.reclaim import reclaim
from outbound.runtime import Runtime
from outbound.sender import NotSent, send_all
from tests.outbound.conftest import NOW


def _sms_batch(sessions, make_action, db: Session) -> list[int]:
    action = make_action()
    result = start_action(sessions, action.id, now=NOW)
    db.commit()
    [batch] = [b for b in result.batches if b.queue == "sms-urgent"]
    return list(batch.delivery_ids)


def _deliveries(db: Session, ids: list[int]) -> list[Delivery]:
    db.expire_all()
    return list(db.scalars(select(Delivery).where(Delivery.id.in_(ids)).order_by(Delivery.id)))


def test_a_renewal_moves_the_lease_on_and_keeps_the_attempts_start(
        db: Session, sessions, population, make_action, runtime: Runtime) -> None:
    ids = _sms_batch(sessions, make_action, db)
    with runtime.writer() as session, session.begin():
        work = claim(session, runtime, ids, NOW)
    assert {d.next_attempt_at for d in _deliveries(db, ids)} == {NOW + LEASE}
    later = NOW + timedelta(seconds=5)
    lease = Lease(runtime.writer, lambda: later, work, NOW)
    assert lease.holds(ids[0]) is None  # the claim waited long for a lock: not used as is
    lease.renew()
    deliveries = _deliveries(db, ids)
    assert {d.next_attempt_at for d in deliveries} == {later + LEASE}
    assert {d.updated_at for d in deliveries} == {NOW}  # the attempt's start, for a look-up
    assert all(lease.holds(i) for i in ids)


def test_a_claim_taken_back_is_never_used(
        db: Session, sessions, population, make_action, runtime: Runtime,
        fake_twilio: FakeTwilioServer) -> None:
    ids = _sms_batch(sessions, make_action, db)
    with runtime.writer() as session, session.begin():
        work = claim(session, runtime, ids, NOW)
    lease = Lease(runtime.writer, lambda: NOW, work, NOW)
    # its lease ran out, reclaim took the first back and another worker claimed it again
    db.execute(update(Delivery).where(Delivery.id == ids[0])
               .values(attempts=Delivery.attempts + 1))
    db.commit()
    lease.renew()
    assert lease.holds(ids[0]) is False and lease.holds(ids[1]) is True
    outcomes = runtime.run(send_all(runtime, work, lease))
    lost = [item.delivery_id for item, result, _ in outcomes
            if isinstance(result, NotSent) and result.code == "lease_lost"]
    assert lost == [ids[0]]
    assert {r.to for r in fake_twilio.fake.records} == \
        {w.message.to for w in work if w.delivery_id != ids[0]}
    with runtime.writer() as session, session.begin():
        assert record(session, outcomes, NOW) == []  # the other claim's: left alone
    first, *rest = _deliveries(db, ids)
    assert first.status == DeliveryStatus.SENDING and first.attempts == 2
    assert {d.status for d in rest} == {DeliveryStatus.SENT}


def test_sends_wait_while_the_lease_is_not_renewed_and_go_once_it_is(
        db: Session, sessions, population, make_action, runtime: Runtime,
        fake_twilio: FakeTwilioServer) -> None:
    ids = _sms_batch(sessions, make_action, db)[:3]
    with runtime.writer() as session, session.begin():
        work = claim(session, runtime, ids, NOW)
    lease = Lease(runtime.writer, lambda: NOW, work, NOW)
    lease._fresh_until = 0.0  # its renewals failed for a while (the database, say)

    async def send_then_renew():
        sending = asyncio.ensure_future(send_all(runtime, work, lease))
        await asyncio.sleep(0.5)
        assert not sending.done() and fake_twilio.fake.records == []
        lease.renew()
        return await sending

    outcomes = runtime.run(send_then_renew())
    assert all(isinstance(result, str) for _, result, _ in outcomes)
    assert len(fake_twilio.fake.records) == 3


def _slow_twilio(runtime: Runtime, fake: FakeTwilioServer, timeout: float) -> None:
    """SMS through the fake with a client that gives up after TIMEOUT seconds."""
    runtime.providers[Channel.SMS] = lambda: TwilioRestProvider(
        ACCOUNT_SID, AUTH_TOKEN, "+31690000999", base_url=fake.url, timeout=timeout)


def test_an_answer_after_the_timeout_is_found_and_never_sent_twice(
        db: Session, sessions, population, make_action, runtime: Runtime, work,
        fake_twilio: FakeTwilioServer) -> None:
    ids = _sms_batch(sessions, make_action, db)
    _slow_twilio(runtime, fake_twilio, timeout=0.5)
    fake_twilio.fake.behaviour.late_rate, fake_twilio.fake.behaviour.late_ms = 1.0, 1500
    enqueue(runtime.redis, [b for b in start_batches(ids)])
    work()
    deliveries = _deliveries(db, ids)
    assert {d.status for d in deliveries} == {DeliveryStatus.UNKNOWN}
    assert all(d.attempts == 1 and "no_answer" in d.provider_error for d in deliveries)
    _until(lambda: len(fake_twilio.fake.records) == len(ids))  # the late answers
    due = max(d.next_attempt_at for d in deliveries)
    assert reclaim(runtime, due - timedelta(seconds=1)).recorded == 0  # not yet: a late one
    done = reclaim(runtime, due + timedelta(seconds=1))
    assert (done.recorded, done.requeued) == (len(ids), 0)
    deliveries = _deliveries(db, ids)
    assert {d.status for d in deliveries} == {DeliveryStatus.SENT}
    assert sorted(d.provider_id for d in deliveries) == \
        sorted(r.sid for r in fake_twilio.fake.records)
    work()
    assert len(fake_twilio.fake.records) == len(ids)


def test_a_request_the_provider_never_took_is_sent_again_after_its_look_up(
        db: Session, sessions, population, make_action, runtime: Runtime, work,
        fake_twilio: FakeTwilioServer, steady_backoff) -> None:
    ids = _sms_batch(sessions, make_action, db)[:5]
    _slow_twilio(runtime, fake_twilio, timeout=0.5)
    behaviour = fake_twilio.fake.behaviour
    behaviour.late_rate, behaviour.late_ms, behaviour.error_rate = 1.0, 1000, 1.0
    enqueue(runtime.redis, start_batches(ids))
    work()
    deliveries = _deliveries(db, ids)
    assert {d.status for d in deliveries} == {DeliveryStatus.UNKNOWN}
    _until(lambda: fake_twilio.open_connections() == 0)  # answered (500), nothing taken
    done = reclaim(runtime, max(d.next_attempt_at for d in deliveries) + timedelta(seconds=1))
    assert (done.recorded, done.requeued) == (0, len(ids))
    deliveries = _deliveries(db, ids)
    assert {d.status for d in deliveries} == {DeliveryStatus.QUEUED}
    assert all("not at the provider" in d.provider_error for d in deliveries)
    behaviour.late_rate = behaviour.error_rate = 0.0
    db.execute(update(Delivery).where(Delivery.id.in_(ids)).values(next_attempt_at=None))
    db.commit()
    enqueue(runtime.redis, start_batches(ids))
    work()
    deliveries = _deliveries(db, ids)
    assert {(d.status, d.attempts) for d in deliveries} == {(DeliveryStatus.SENT, 2)}
    assert len(fake_twilio.fake.records) == len(ids)


def start_batches(ids: list[int]) -> list[Batch]:
    return [Batch("sms-urgent", tuple(ids))]


def _until(condition, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _message(to: str = "+31690000500", body: str = "Burgernet: test") -> Message:
    return Message(1, Channel.SMS, to, body, "nl")


def _provider(url: str, sender: str = "+31690000999") -> TwilioRestProvider:
    return TwilioRestProvider(ACCOUNT_SID, AUTH_TOKEN, sender, base_url=url, timeout=2.0)


async def _send(url: str, message: Message) -> str:
    provider = _provider(url)
    try:
        return await provider.send(message)
    finally:
        await provider.close()


def test_a_request_that_never_left_is_not_unknown_and_one_without_answer_is() -> None:
    with pytest.raises(ProviderError) as refused:  # nothing listens there
        asyncio.run(_send(f"http://127.0.0.1:{free_port()}", _message()))
    assert refused.value.retryable and not refused.value.unknown
    listener = socket.create_server(("127.0.0.1", 0))

    def read_then_hang_up() -> None:
        connection, _ = listener.accept()
        connection.recv(65536)  # the whole request arrived: the carrier may act on it
        connection.close()

    threading.Thread(target=read_then_hang_up, daemon=True).start()
    with pytest.raises(ProviderError) as reset:
        asyncio.run(_send(f"http://127.0.0.1:{listener.getsockname()[1]}", _message()))
    listener.close()
    assert reset.value.retryable and reset.value.unknown and reset.value.code == "no_answer"


def test_a_look_up_finds_only_our_message_to_that_number_since_the_attempt(
        fake_twilio: FakeTwilioServer) -> None:
    async def scenario() -> list[str | None]:
        ours, other_sender = _provider(fake_twilio.url), _provider(fake_twilio.url, "+3197000")
        since = datetime.now(UTC)
        try:
            sid = await ours.send(_message())
            await ours.send(_message("+31690000501"))
            await other_sender.send(_message("+31690000502"))
            return [sid,
                    await ours.find_sent(_message(), since),
                    await ours.find_sent(_message(body="Burgernet: iets anders"), since),
                    await ours.find_sent(_message(), since + timedelta(minutes=1)),
                    await ours.find_sent(_message("+31690000502"), since)]
        finally:
            await ours.close()
            await other_sender.close()

    sid, found, other_text, later, other_sender = asyncio.run(scenario())
    assert found == sid
    assert other_text is None and later is None and other_sender is None
