"""Unconfirmed sign-ups leave nothing behind: the workers' periodic round and `burgernet
purge` erase them once their code has expired, also several at once."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
from click.testing import CliRunner
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from core.cli import main
from core.db import make_engine, session_factory, transaction
from core.models import AuditEvent, Participant, ParticipantStatus
from core.participants import PURGE_BATCH, register
from core.redis_server import EmbeddedRedis
from core.schema import ensure_schema
from core.settings import Settings
from outbound.purge import purge_unconfirmed
from outbound.runtime import Runtime
from outbound.worker import _purge_once
from tests.conftest import MELDKAMER_CONFIG

SECRET = "test-secret-key"


def _pending(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(Participant)
                     .where(Participant.status == ParticipantStatus.PENDING))


def test_a_worker_round_erases_an_expired_sign_up_and_its_demo_messages(
        settings: Settings, engine: Engine, sessions: sessionmaker[Session],
        redis_client: redis.Redis, db: Session) -> None:
    now = datetime.now(UTC)  # the round reads the clock; the sign-ups are far from the edge
    stale = register(db, "0612345678", secret=SECRET, now=now - timedelta(hours=1), pc4="3511")
    fresh = register(db, "0687654321", secret=SECRET, now=now, pc4="3511")
    db.commit()
    outbox = settings.var_dir / "console-outbox.jsonl"
    outbox.parent.mkdir(parents=True, exist_ok=True)
    outbox.write_text("".join(json.dumps({"channel": "sms", "to": sent.phone,
                                          "body": f"Uw Burgernet-code is {sent.code}."}) + "\n"
                              for sent in (stale, fresh)))
    runtime = Runtime(settings, engine, sessions, redis_client)
    _purge_once(runtime)
    db.expire_all()
    assert db.scalars(select(Participant.phone)).all() == [fresh.phone]
    assert [json.loads(line)["to"] for line in outbox.read_text().splitlines()] == [fresh.phone]


def test_burgernet_purge_erases_expired_sign_ups_beside_the_demo_and_a_second_run_none(
        tmp_path: Path, new_database_url: Callable[[], str],
        redis_server: EmbeddedRedis) -> None:
    url = new_database_url()
    env = {"BURGERNET_HOME": str(tmp_path), "DATABASE_URL": url, "REDIS_URL": redis_server.url,
           "MELDKAMER_CONFIG": str(MELDKAMER_CONFIG)}

    def run(*args: str):
        result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    run("load-reference")
    run("seed-demo", "--participants", "500")
    engine = make_engine(url)
    now = datetime.now(UTC)  # the command reads the clock; the codes are far from the edge
    with transaction(session_factory(engine)) as db:
        assert _pending(db) == 0  # the demo has no sign-ups waiting for a code
        total = db.scalar(select(func.count(Participant.id)))
        for n, expires in enumerate([-50, -50, -50, 9]):
            db.add(Participant(phone=f"+316123400{n:02d}", status=ParticipantStatus.PENDING,
                               created_at=now - timedelta(hours=1), code_hash="x" * 64,
                               code_expires_at=now + timedelta(minutes=expires),
                               quiet_hours={}))
    assert run("purge").strip() == "3 unconfirmed sign-up(s) erased"
    assert run("purge").strip() == "0 unconfirmed sign-up(s) erased"
    with Session(engine) as db:
        assert _pending(db) == 1
        assert db.scalar(select(func.count(Participant.id))) == total + 1
    engine.dispose()


def test_two_workers_purging_at_once_erase_each_sign_up_exactly_once(
        tmp_path: Path, new_database_url: Callable[[], str]) -> None:
    engine = make_engine(new_database_url())
    ensure_schema(engine)
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    count = PURGE_BATCH * 2 + 137
    with transaction(session_factory(engine)) as db:
        db.add_all(Participant(phone=f"+3169{n:07d}", status=ParticipantStatus.PENDING,
                               created_at=now - timedelta(hours=1), code_hash="x" * 64,
                               code_expires_at=now - timedelta(minutes=50), quiet_hours={})
                   for n in range(count))
        db.add(Participant(phone="+31690999999", status=ParticipantStatus.VERIFIED,
                           verified_at=now, quiet_hours={}))
    erased: list[int] = []
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            erased.append(purge_unconfirmed(session_factory(engine, writer=True), tmp_path, now))
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == [] and sum(erased) == count
    with Session(engine) as db:
        assert db.scalars(select(Participant.phone)).all() == ["+31690999999"]
        batches = db.scalars(select(AuditEvent.details)
                             .where(AuditEvent.verb == "purge_unverified")).all()
    ids = [pid for batch in batches for pid in batch["participants"]]
    assert len(ids) == len(set(ids)) == count
    engine.dispose()
