from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from core.models import (
    Action,
    ActionKind,
    Channel,
    Meldkamer,
    Organisation,
    OrganisationKind,
    ParticipantStatus,
    Urgency,
)
from core.settings import Settings
from fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilioServer
from outbound.providers.console import ConsoleProvider
from outbound.providers.twilio_rest import TwilioRestProvider
from outbound.queues import queue_names
from outbound.runtime import Runtime
from outbound.worker import BatchWorker
from tests.conftest import UNTHROTTLED
from tests.population import UTRECHT, add_people, elsewhere, neighbourhood

NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilioServer]:
    """A Twilio-compatible server on a loopback port, speaking real HTTP."""
    with FakeTwilioServer() as server:
        yield server


@pytest.fixture
def runtime(settings: Settings, engine: Engine, sessions: sessionmaker[Session],
            redis_client: redis.Redis, fake_twilio: FakeTwilioServer,
            tmp_path) -> Iterator[Runtime]:
    """The worker's runtime on the test transaction, sending SMS and calls to the fake."""

    def twilio() -> TwilioRestProvider:
        return TwilioRestProvider(ACCOUNT_SID, AUTH_TOKEN, "+31690000999",
                                  base_url=fake_twilio.url,
                                  voice_url="http://127.0.0.1:9/webhooks/twilio/voice")

    console = ConsoleProvider(tmp_path / "console.jsonl")
    unthrottled = replace(settings, **UNTHROTTLED)
    rt = Runtime(unthrottled, engine, sessions, redis_client, providers={
        Channel.SMS: twilio, Channel.VOICE: twilio,
        Channel.EMAIL: lambda: console, Channel.PUSH: lambda: console})
    yield rt
    rt.close()


@pytest.fixture
def work(redis_client: redis.Redis, runtime: Runtime):
    """Run a worker in this process, on RUNTIME, until the queues are empty."""

    def drain() -> None:
        queues = [Queue(n, connection=redis_client, serializer=JSONSerializer)
                  for n in queue_names()]
        BatchWorker(queues, connection=redis_client, serializer=JSONSerializer,
                    runtime=runtime).work(burst=True)

    return drain


@pytest.fixture
def steady_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries a minute after a failure. Full jitter can draw a few milliseconds: the retry is
    then due at once, and the burst worker sends it again before the test looks."""
    monkeypatch.setattr("outbound.retry.backoff", lambda attempt: timedelta(seconds=60))


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


#: Forty verified participants within 2.5 km of Utrecht centre with every mix of channels,
#: language and quiet hours (see tests.population.neighbourhood); a pending and a stopped one
#: among them, whom nothing reaches; and three verified ones far away in other cities, whom
#: only a national alert reaches.
NEIGHBOURS = neighbourhood(40)
POPULATION = [
    *NEIGHBOURS,
    elsewhere(NEIGHBOURS[5], *UTRECHT, number=NEIGHBOURS[-1].number + 1,
              status=ParticipantStatus.PENDING),
    elsewhere(NEIGHBOURS[5], *UTRECHT, number=NEIGHBOURS[-1].number + 2,
              status=ParticipantStatus.STOPPED),
    elsewhere(NEIGHBOURS[0], 52.3731, 4.8922, number=NEIGHBOURS[-1].number + 3),  # Amsterdam
    elsewhere(NEIGHBOURS[2], 53.2194, 6.5665, number=NEIGHBOURS[-1].number + 4),  # Groningen
    elsewhere(NEIGHBOURS[1], 50.8514, 5.6910, number=NEIGHBOURS[-1].number + 5),  # Maastricht
]
BY_PHONE = {person.phone: person for person in POPULATION}
BY_EMAIL = {person.email: person for person in POPULATION if person.email}


@pytest.fixture
def population(sessions: sessionmaker[Session]) -> dict[str, int]:
    """POPULATION stored; participant ids by phone number."""
    with sessions() as session:
        ids = add_people(session, POPULATION, NOW)
        session.commit()
    return ids
