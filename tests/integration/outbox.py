"""What the fault tests share: a file database with 120 neighbours and an action, workers
as real processes sending to the Twilio-compatible fake, and the count of what reached it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import make_engine, session_factory
from core.models import (
    Action,
    ActionKind,
    Channel,
    Delivery,
    DeliveryStatus,
    Meldkamer,
    Organisation,
    OrganisationKind,
    Urgency,
)
from core.redis_server import EmbeddedRedis
from core.reference import load_reference
from core.schema import ensure_schema
from core.settings import DEFAULT_DATA_DIR
from fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilioServer
from tests.conftest import MELDKAMER_CONFIG
from tests.population import Neighbour, add_people, neighbourhood

#: 120 participants within 5 km of Utrecht centre: 120 SMS and calls, 60 push messages.
PEOPLE = neighbourhood(120, within_m=5_000)


def prepared_database(url: str, people: list[Neighbour] = PEOPLE) -> int:
    """The schema, the reference data, PEOPLE and an urgent action around them; its id."""
    engine = make_engine(url)
    ensure_schema(engine)
    sessions = session_factory(engine)
    with sessions() as session, session.begin():
        load_reference(session, DEFAULT_DATA_DIR, MELDKAMER_CONFIG)
        add_people(session, people, datetime.now(UTC))
        police = Organisation(name="Politie Midden-Nederland", kind=OrganisationKind.POLICE)
        session.add(police)
    with sessions() as session, session.begin():
        action = Action(kind=ActionKind.SUSPECT, urgency=Urgency.URGENT, title_nl="Verdachte",
                        description_nl="Blauwe jas.", center_lat=52.0907, center_lon=5.1214,
                        radius_m=6000,
                        meldkamer=session.scalar(select(Meldkamer).where(Meldkamer.code == "MN")),
                        organisation=session.scalar(select(Organisation).where(
                            Organisation.name == "Politie Midden-Nederland")))
        session.add(action)
        session.flush()
        action_id = action.id
    engine.dispose()
    return action_id


def worker_env(url: str, redis_server: EmbeddedRedis, home: Path, fake: FakeTwilioServer,
               rate: str) -> dict[str, str]:
    """What `burgernet worker` needs to send through the fake at RATE per second."""
    return {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis_server.url,
            "BURGERNET_HOME": str(home), "MELDKAMER_CONFIG": str(MELDKAMER_CONFIG),
            "SMS_PROVIDER": "twilio", "VOICE_PROVIDER": "twilio",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM": "+31690000999", "TWILIO_BASE_URL": fake.url,
            "SMS_RATE": rate, "VOICE_RATE": rate, "PUBLIC_URL": "http://127.0.0.1:9"}


def start_worker(env: dict[str, str], *args: str, log: Path | None = None
                 ) -> subprocess.Popen[bytes]:
    """`burgernet worker ARGS` as a process of its own; its output to LOG."""
    command = [sys.executable, "-m", "core.cli", "worker", *args]
    if log is None:
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def until_answered(fake: FakeTwilioServer, seconds: float = 30) -> None:
    """Wait until every request a (killed) worker sent is answered or refused."""
    deadline = time.monotonic() + seconds
    while fake.open_connections():
        assert time.monotonic() < deadline, "the fake still holds a connection"
        time.sleep(0.05)


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> float:
    """Poll CONDITION until it holds; the moment it did (time.monotonic)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.1)
    return time.monotonic()


def statuses(url: str, ids: list[int] | None = None) -> Counter[DeliveryStatus]:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            query = select(Delivery.status)
            if ids is not None:
                query = query.where(Delivery.id.in_(ids))
            return Counter(session.scalars(query))
    finally:
        engine.dispose()


def assert_each_sent_once(url: str, action_id: int, fake: FakeTwilioServer,
                          expected: int) -> int:
    """Every delivery sent, every SMS and call at the provider exactly once; how many SMS
    and calls it holds."""
    records = list(fake.fake.records)
    with Session(make_engine(url)) as session:
        deliveries = session.scalars(select(Delivery).where(
            Delivery.action_id == action_id)).all()
    assert Counter(d.status for d in deliveries) == {DeliveryStatus.SENT: expected}
    telephony = [d for d in deliveries if d.channel in {Channel.SMS, Channel.VOICE}]
    assert max(Counter((r.kind, r.to) for r in records).values()) == 1, "sent twice"
    assert len(records) == len(telephony), "every SMS and call reached the provider once"
    assert {d.provider_id for d in telephony} == {r.sid for r in records}
    return len(records)
