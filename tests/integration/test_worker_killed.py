"""Exactly once: a worker killed with SIGKILL mid-batch loses nothing and sends nothing twice.

Real processes: `burgernet worker` against a real redis-server, a file database, and the
Twilio-compatible fake over HTTP; the test kills the worker while it is sending, lets the
lease run out, reclaims, and runs a second worker to the end.
"""

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
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
from core.settings import DEFAULT_DATA_DIR, Settings
from fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilioServer
from outbound.fanout import start_action
from outbound.queues import enqueue
from outbound.reclaim import reclaim
from outbound.runtime import build_runtime
from tests.conftest import MELDKAMER_CONFIG
from tests.population import add_people, neighbourhood

#: 120 participants within 5 km of Utrecht centre: 120 SMS and calls, 60 push messages.
PEOPLE = neighbourhood(120, within_m=5_000)


def _prepared_database(url: str) -> int:
    engine = make_engine(url)
    ensure_schema(engine)
    sessions = session_factory(engine)
    with sessions() as session, session.begin():
        load_reference(session, DEFAULT_DATA_DIR, MELDKAMER_CONFIG)
        add_people(session, PEOPLE, datetime.now(UTC))
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


def _worker_env(url: str, redis_server: EmbeddedRedis, home: Path, fake: FakeTwilioServer,
                rate: str) -> dict[str, str]:
    """What `burgernet worker` needs to send through the fake at RATE per second."""
    return {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis_server.url,
            "BURGERNET_HOME": str(home), "MELDKAMER_CONFIG": str(MELDKAMER_CONFIG),
            "SMS_PROVIDER": "twilio", "VOICE_PROVIDER": "twilio",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM": "+31690000999", "TWILIO_BASE_URL": fake.url,
            "SMS_RATE": rate, "VOICE_RATE": rate, "PUBLIC_URL": "http://127.0.0.1:9"}


def _until_answered(fake: FakeTwilioServer, seconds: float = 30) -> None:
    """Wait until every request a (killed) worker sent is answered or refused: by the time
    a real lease runs out, the provider has long done so."""
    deadline = time.monotonic() + seconds
    while fake.open_connections():
        assert time.monotonic() < deadline, "the fake still holds a connection"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_worker_killed_mid_batch_loses_nothing_and_sends_nothing_twice(
        tmp_path: Path, new_database_url: Callable[[], str],
        redis_server: EmbeddedRedis) -> None:
    url = new_database_url()
    action_id = _prepared_database(url)
    with FakeTwilioServer() as fake:
        env = _worker_env(url, redis_server, tmp_path, fake, rate="25")
        settings = Settings.from_env(env)
        runtime = build_runtime(settings)
        runtime.redis.flushdb()
        started = start_action(runtime.writer, action_id, now=datetime.now(UTC))
        enqueue(runtime.redis, started.batches)
        expected = started.deliveries
        assert expected > 60

        first = subprocess.Popen([sys.executable, "-m", "core.cli", "worker", "--burst"],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while len(fake.fake.records) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        first.kill()  # SIGKILL: no cleanup, no chance to record what it sent
        first.wait()
        _until_answered(fake)
        before = len(fake.fake.records)
        assert 0 < before < expected

        with runtime.writer() as session:
            stuck = session.scalars(select(Delivery).where(
                Delivery.status == DeliveryStatus.SENDING)).all()
        assert stuck, "the kill should leave deliveries in flight"
        later = datetime.now(UTC) + timedelta(hours=1)  # the lease has run out
        done = reclaim(runtime, later)
        assert done.recorded + done.requeued == len(stuck)
        assert done.recorded > 0 and done.requeued > 0  # found at the provider, and not
        runtime.close()

        second = subprocess.run([sys.executable, "-m", "core.cli", "worker", "--burst"],
                                env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr[-2000:]
        _until_answered(fake)
        records = list(fake.fake.records)

    with Session(make_engine(url)) as session:
        deliveries = session.scalars(select(Delivery).where(
            Delivery.action_id == action_id)).all()
    assert Counter(d.status for d in deliveries) == {DeliveryStatus.SENT: expected}
    telephony = [d for d in deliveries if d.channel in {Channel.SMS, Channel.VOICE}]
    assert len(records) == len(telephony), "every SMS and call reached the provider once"
    assert {d.provider_id for d in telephony} == {r.sid for r in records}
    assert max(Counter((r.kind, r.to) for r in records).values()) == 1


@pytest.mark.slow
def test_parallel_workers_share_the_outbox_without_conflicts(
        tmp_path: Path, new_database_url: Callable[[], str],
        redis_server: EmbeddedRedis) -> None:
    url = new_database_url()
    action_id = _prepared_database(url)
    with FakeTwilioServer() as fake:
        env = _worker_env(url, redis_server, tmp_path, fake, rate="0")
        runtime = build_runtime(Settings.from_env(env))
        runtime.redis.flushdb()
        started = start_action(runtime.writer, action_id, now=datetime.now(UTC))
        small = [replace(b, delivery_ids=ids) for b in started.batches
                 for ids in (b.delivery_ids[i:i + 10] for i in range(0, len(b.delivery_ids), 10))]
        enqueue(runtime.redis, small)
        workers = [subprocess.Popen([sys.executable, "-m", "core.cli", "worker", "--burst"],
                                    env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True) for _ in range(3)]
        errors = [worker.communicate(timeout=120)[1] for worker in workers]
        records = list(fake.fake.records)
    assert not [e for e in errors if "locked" in e or "Traceback" in e]
    with Session(make_engine(url)) as session:
        statuses = Counter(session.scalars(select(Delivery.status).where(
            Delivery.action_id == action_id)))
    assert statuses == {DeliveryStatus.SENT: started.deliveries}
    assert max(Counter((r.kind, r.to) for r in records).values()) == 1


def test_an_interrupted_start_is_completed_by_the_resume_without_duplicates(
        new_database_url: Callable[[], str], monkeypatch) -> None:
    import core.targeting
    from core.targeting import preview
    from outbound.fanout import area_of, resume_outboxes

    url = new_database_url()
    action_id = _prepared_database(url)
    sessions = session_factory(make_engine(url), writer=True)
    monkeypatch.setattr(core.targeting, "BATCH", 10)  # many chunks
    now = datetime.now(UTC)
    with sessions() as session:
        expected = preview(session, area_of(session.get(Action, action_id)),
                           Urgency.URGENT, now).messages
    calls = []

    def crash_on_second_chunk(batches) -> None:
        calls.append(batches)
        if len(calls) == 2:
            raise RuntimeError("the process died here")

    with pytest.raises(RuntimeError):
        start_action(sessions, action_id, now=now, dispatch=crash_on_second_chunk)

    def count() -> int:
        with sessions() as session:
            return session.scalar(select(func.count(Delivery.id))
                                  .where(Delivery.action_id == action_id)) or 0

    written = count()
    assert 0 < written < expected  # the first chunks stayed, committed and queued
    assert resume_outboxes(sessions, now, lambda b: None) == []  # too recent to be stuck
    [resumed] = resume_outboxes(sessions, now + timedelta(minutes=5), lambda b: None)
    assert count() == expected  # nothing written twice
    assert resumed.deliveries == expected  # every queued one handed to the queues again
    with sessions() as session:
        assert session.get(Action, action_id).outbox_done_at is not None
