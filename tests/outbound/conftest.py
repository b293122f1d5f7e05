from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.models import (
    Action,
    ActionKind,
    Channel,
    Meldkamer,
    Organisation,
    OrganisationKind,
    Urgency,
)
from core.seed import seed_demo
from core.settings import Settings
from outbound.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilioServer
from outbound.providers.console import ConsoleProvider
from outbound.providers.twilio_rest import TwilioRestProvider
from outbound.queues import queue_names
from outbound.runtime import OutboundRuntime, install
from outbound.throttle import Throttle
from outbound.worker import OutboundWorker

UTRECHT = (52.0907, 5.1214)
NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilioServer]:
    """A Twilio-compatible server on a loopback port, speaking real HTTP."""
    with FakeTwilioServer() as server:
        yield server


@pytest.fixture
def runtime(settings: Settings, sessions: sessionmaker[Session], redis_client: redis.Redis,
            fake_twilio: FakeTwilioServer, tmp_path) -> Iterator[OutboundRuntime]:
    """The worker's runtime on the test transaction, sending SMS and calls to the fake."""

    def twilio() -> TwilioRestProvider:
        return TwilioRestProvider(ACCOUNT_SID, AUTH_TOKEN, "+31690000999",
                                  base_url=fake_twilio.url,
                                  voice_url="http://127.0.0.1:9/webhooks/twilio/voice")

    console = ConsoleProvider(tmp_path / "console.jsonl")
    unthrottled = replace(settings, sms_rate=0.0, voice_rate=0.0, email_rate=0.0, push_rate=0.0)
    rt = OutboundRuntime(unthrottled, sessions, redis_client, Throttle(redis_client), {
        Channel.SMS: twilio, Channel.VOICE: twilio,
        Channel.EMAIL: lambda: console, Channel.PUSH: lambda: console})
    install(rt)
    yield rt
    rt.close()


@pytest.fixture
def work(redis_client: redis.Redis, runtime: OutboundRuntime):
    """Run a worker in this process until the queues are empty."""

    def drain() -> None:
        queues = [Queue(n, connection=redis_client, serializer=JSONSerializer)
                  for n in queue_names()]
        OutboundWorker(queues, connection=redis_client, serializer=JSONSerializer).work(
            burst=True)

    return drain


@pytest.fixture
def make_action(db: Session):
    """A draft action around Utrecht."""

    def make(kind: ActionKind = ActionKind.SUSPECT, radius_m: float = 3000,
             urgency: Urgency = Urgency.URGENT) -> Action:
        org = db.scalar(select(Organisation).where(Organisation.name == "Politie Test"))
        if org is None:
            org = Organisation(name="Politie Test", kind=OrganisationKind.POLICE)
        action = Action(kind=kind, urgency=urgency, title_nl="Man in rode jas",
                        title_en="Man in red coat", description_nl="Ongeveer 30 jaar.",
                        instruction_nl="Niet benaderen.", center_lat=UTRECHT[0],
                        center_lon=UTRECHT[1], radius_m=radius_m, organisation=org,
                        meldkamer=db.scalar(select(Meldkamer).where(Meldkamer.code == "MN")))
        db.add(action)
        db.commit()
        return action

    return make


@pytest.fixture
def population(sessions: sessionmaker[Session]) -> None:
    """3,000 demo participants; a few dozen live around Utrecht."""
    seed_demo(sessions, size=3000, seed=5)
