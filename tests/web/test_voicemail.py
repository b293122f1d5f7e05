"""A voice message end to end over real HTTP: our Twilio provider asks the local fake Twilio for
answering machine detection, the fake answers the call the way Twilio documents synchronous
detection (the voice URL requested with AnsweredBy), and the app, served on loopback, answers
with TwiML and keeps the outcome."""

from __future__ import annotations

import asyncio
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from core.models import (
    Action,
    ActionKind,
    ActionStatus,
    CallRecord,
    Channel,
    Delivery,
    DeliveryStatus,
    Meldkamer,
    Organisation,
    OrganisationKind,
    Participant,
    ParticipantStatus,
    Urgency,
)
from fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, Behaviour, FakeTwilio, FakeTwilioServer
from outbound.callbacks import apply_early
from outbound.providers import Message
from outbound.providers.twilio_rest import TwilioRestProvider

HOST = "127.0.0.1"


@pytest.fixture
def served(make_app: Callable[..., Flask], twilio_signed: dict[str, str]) -> Iterator[str]:
    """The app on a free loopback port, its PUBLIC_URL that address; yields the address.
    Requests are served one at a time, and the test reads the database only between them."""
    holder: dict[str, Any] = {}
    server = make_server(HOST, 0, lambda environ, start: holder["app"](environ, start))
    url = f"http://{HOST}:{server.port}"
    holder["app"] = make_app(**twilio_signed, public_url=url)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        thread.join(5)


@pytest.fixture
def delivery(db: Session) -> Delivery:
    org = Organisation(name="Politie Voicemail", kind=OrganisationKind.POLICE)
    action = Action(kind=ActionKind.SUSPECT, urgency=Urgency.URGENT, status=ActionStatus.ACTIVE,
                    title_nl="Inbraak", description_nl="Man met blauwe pet.",
                    center_lat=52.09, center_lon=5.12, radius_m=1500, organisation=org,
                    meldkamer=db.scalar(select(Meldkamer).where(Meldkamer.code == "MN")),
                    started_at=datetime.now(UTC) - timedelta(minutes=1))
    person = Participant(phone="+31690006161", status=ParticipantStatus.VERIFIED)
    item = Delivery(action=action, participant=person, channel=Channel.VOICE,
                    status=DeliveryStatus.SENDING, attempts=1)
    db.add(item)
    db.commit()
    return item


def _call(served: str, fake: FakeTwilioServer, delivery: Delivery) -> str:
    """Place the call as a worker does; returns the CallSid once the fake's webhooks are done
    (answer, then the final status)."""
    async def send() -> str:
        provider = TwilioRestProvider(ACCOUNT_SID, AUTH_TOKEN, "+31690000999",
                                      base_url=fake.url,
                                      voice_url=f"{served}/webhooks/twilio/voice")
        try:
            return await provider.send(Message(
                delivery.id, Channel.VOICE, "+31690006161", "", "nl",
                status_callback=f"{served}/webhooks/twilio/status?delivery={delivery.id}"))
        finally:
            await provider.close()

    sid = asyncio.run(send())
    _wait_for(lambda: bool(fake.fake.records) and not fake.fake._pending)
    return sid


def _wait_for(done: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "the fake's webhooks did not finish"
        time.sleep(0.02)


def _record_send(db: Session, redis_client: redis.Redis, delivery: Delivery, sid: str) -> None:
    """What the batch does once its sends are out: record the CallSid, then apply what came
    for it before (here: everything, since the fake answered at once)."""
    delivery.status, delivery.provider_id = DeliveryStatus.SENT, sid
    db.commit()
    apply_early(db, redis_client, [sid], datetime.now(UTC))
    db.commit()


def test_an_answering_machine_gets_the_message_after_the_beep(served, db, delivery,
                                                             redis_client):
    with FakeTwilioServer(FakeTwilio(Behaviour(machine_rate=1.0, seed=1))) as fake:
        sid = _call(served, fake, delivery)
    (record,) = fake.fake.records
    assert record.machine_detection == "DetectMessageEnd"
    assert record.answered_by == "machine_end_beep"
    twiml = ET.fromstring(record.twiml or "")
    assert [child.tag for child in twiml] == ["Play", "Play", "Hangup"]
    _record_send(db, redis_client, delivery, sid)
    db.refresh(delivery)
    assert delivery.status == DeliveryStatus.VOICEMAIL
    call = db.scalar(select(CallRecord).where(CallRecord.provider_call_id == sid))
    assert call.outcome == "voicemail" and call.ended_at is not None


def test_a_person_gets_the_menu_and_counts_as_answered(served, db, delivery, redis_client):
    with FakeTwilioServer(FakeTwilio(Behaviour(machine_rate=0.0, seed=1))) as fake:
        sid = _call(served, fake, delivery)
    (record,) = fake.fake.records
    assert record.answered_by == "human"
    twiml = ET.fromstring(record.twiml or "")
    assert twiml.find("Gather").get("numDigits") == "1"
    _record_send(db, redis_client, delivery, sid)
    db.refresh(delivery)
    assert delivery.status == DeliveryStatus.ANSWERED
