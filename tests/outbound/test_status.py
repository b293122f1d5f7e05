"""`burgernet status` and what it reads, against a real Redis, a real database and real
worker processes: workers alive, queue depth and wait, the outbox of active actions, send
rates from the throttle's state, and the SIP nodes' registration."""

from __future__ import annotations

import json
import signal
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.cli import main
from core.models import Action, ActionStatus, Channel, Delivery
from core.redis_server import EmbeddedRedis, free_port
from ivr.registration import PREFIX, TTL, RegistrationReport, registrations
from outbound.claim import claim
from outbound.fanout import start_action
from outbound.queues import Batch, enqueue, queue_name
from outbound.runtime import Runtime
from outbound.status import (
    outbox_backlog,
    problems,
    queue_states,
    send_rates,
    system_status,
    workers,
)
from outbound.worker import BatchWorker
from tests.conftest import MELDKAMER_CONFIG
from tests.outbound.conftest import NOW
from tests.workers import worker_process

SMS_URGENT = queue_name(Channel.SMS, "urgent")


def test_each_queue_says_how_many_jobs_wait_and_how_long_the_oldest_has(redis_client) -> None:
    enqueue(redis_client, [Batch(SMS_URGENT, (1, 2)), Batch(SMS_URGENT, (3, 4))])
    enqueue(redis_client, [Batch(queue_name(Channel.EMAIL, "normal"), (5,))], delay=600)
    later = datetime.now(UTC) + timedelta(seconds=40)
    states = {state.name: state for state in queue_states(redis_client, later)}
    urgent, normal = states[SMS_URGENT], states["email-normal"]
    assert (urgent.waiting, urgent.scheduled, urgent.running, urgent.failed) == (2, 0, 0, 0)
    assert 40 <= urgent.oldest_seconds < 100
    assert (normal.waiting, normal.scheduled, normal.oldest_seconds) == (0, 1, None)
    assert [name for name, state in states.items() if not state.empty] == \
        [SMS_URGENT, "email-normal"]


def test_the_backlog_counts_what_active_actions_have_left_due_held_and_sending(
        db: Session, sessions, population, make_action, runtime) -> None:
    action = make_action()
    start_action(sessions, action.id, now=NOW)
    ended = make_action()
    start_action(sessions, ended.id, now=NOW)
    db.execute(update(Action).where(Action.id == ended.id).values(status=ActionStatus.ENDED))
    ids = db.scalars(select(Delivery.id).where(Delivery.action_id == action.id)
                     .order_by(Delivery.id)).all()
    db.execute(update(Delivery).where(Delivery.action_id == action.id)
               .values(next_attempt_at=None, created_at=NOW - timedelta(minutes=3)))
    db.execute(update(Delivery).where(Delivery.id.in_(ids[:5]))
               .values(next_attempt_at=NOW + timedelta(hours=8)))  # quiet hours
    db.execute(update(Delivery).where(Delivery.id.in_(ids[5:8]))
               .values(next_attempt_at=NOW - timedelta(minutes=1)))  # a retry due since 1 min
    db.commit()
    with sessions() as session, session.begin():
        assert len(claim(session, runtime, list(ids[-2:]), NOW)) == 2
    with sessions() as session:
        [backlog] = outbox_backlog(session, NOW)
    assert (backlog.action_id, backlog.kind, backlog.urgency) == (action.id, "suspect",
                                                                  "urgent")
    assert (backlog.due, backlog.held, backlog.sending) == (len(ids) - 7, 5, 2)
    assert backlog.oldest_due_seconds == 180.0


def test_send_rates_come_from_the_throttles_state_in_redis(runtime: Runtime) -> None:
    limited = replace(runtime, settings=replace(runtime.settings, sms_rate=10.0))
    sender = limited.sender_key(Channel.SMS)
    limited.throttle.reserve(sender, 10.0, 50)  # five seconds of slots
    for n in range(3):
        assert limited.send_window.admit(sender, 10.0, f"m{n}")[0] == 0
    rates = {rate.channel: rate for rate in send_rates(limited, datetime.now(UTC))}
    assert (rates["sms"].limit, rates["sms"].last_second) == (10.0, 3)
    assert 3 < rates["sms"].booked_seconds <= 5
    assert (rates["push"].limit, rates["push"].last_second, rates["push"].booked_seconds) == \
        (0.0, None, 0.0)  # no limit, nothing kept


def test_a_sip_nodes_report_lives_while_it_is_refreshed(redis_client) -> None:
    report = RegistrationReport(redis_client, "burgernet@127.0.0.2:5071", "127.0.0.1:5060")
    report.report(True, NOW)
    [node] = registrations(redis_client)
    assert (node.node, node.registered, node.proxy, node.at) == \
        ("burgernet@127.0.0.2:5071", True, "127.0.0.1:5060", NOW)
    assert 0 < redis_client.ttl(PREFIX + node.node) <= TTL
    report.report(False, NOW)
    assert [n.registered for n in registrations(redis_client)] == [False]
    report.withdraw()
    assert registrations(redis_client) == []


def test_a_sip_node_goes_on_when_redis_is_gone(caplog) -> None:
    dead = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2)
    report = RegistrationReport(dead, "burgernet@127.0.0.2:5071", "127.0.0.1:5060")
    report.report(True, NOW)
    report.report(True, NOW)
    report.withdraw()
    assert caplog.text.count("cannot report the SIP registration") == 1


def test_a_worker_reports_while_a_long_job_runs(redis_client, runtime) -> None:
    """RQ's own heartbeats come between jobs; a batch at a low rate runs for minutes."""
    queue = Queue(SMS_URGENT, connection=redis_client, serializer=JSONSerializer)
    queue.enqueue("time.sleep", 1.5)
    worker = BatchWorker([queue], connection=redis_client, serializer=JSONSerializer,
                         runtime=runtime, name="long-job")
    worker.heartbeat_every = 0.2
    beats: set[bytes] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.05):
            if worker.get_current_job_id() and (beat := redis_client.hget(worker.key,
                                                                           "last_heartbeat")):
                beats.add(beat)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        worker.work(burst=True)
    finally:
        stop.set()
        watcher.join()
    assert len(beats) >= 4, beats


def test_an_urgent_job_waiting_over_thirty_seconds_is_a_problem(runtime, redis_client) -> None:
    enqueue(redis_client, [Batch(SMS_URGENT, (1,))])
    later = replace(runtime, clock=lambda: datetime.now(UTC) + timedelta(seconds=45))
    found = problems(system_status(later))
    assert found[0] == "no worker has reported within 60 s"
    assert found[1].startswith("queue sms-urgent: its oldest job has waited 4")


# --- the command ----------------------------------------------------------------------------


@pytest.fixture
def status(tmp_path: Path, database_url: str, redis_server: EmbeddedRedis, redis_client):
    """`burgernet status` on the test database and Redis; its exit code and output."""

    def run(*args: str, redis_url: str | None = None):
        env = {"BURGERNET_HOME": str(tmp_path), "DATABASE_URL": database_url,
               "REDIS_URL": redis_url or redis_server.url, "SECRET_KEY": "k",
               "MELDKAMER_CONFIG": str(MELDKAMER_CONFIG), "SMS_RATE": "5"}
        return CliRunner().invoke(main, ["status", *args], env=env, catch_exceptions=False)

    return run


def test_without_a_worker_the_command_says_so_and_fails(status) -> None:
    result = status()
    assert result.exit_code == 1
    assert "workers   0 alive" in result.output
    assert "PROBLEMS\n  - no worker has reported within 60 s" in result.output
    assert "  sms    0 of 5/s" in result.output and "  push   no limit" in result.output


def test_with_redis_unreachable_the_command_says_so_and_fails(status) -> None:
    result = status("--json", redis_url=f"redis://127.0.0.1:{free_port()}/0")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert (report["ok"], report["database"], report["redis"]) == (False, "ok", "unreachable")
    assert report["workers"] is None and report["queues"] is None and report["sip"] is None
    assert report["problems"] == ["Redis: unreachable"]


@pytest.mark.slow
def test_with_a_worker_and_a_registered_sip_node_all_is_well(
        status, tmp_path, database_url, redis_server, redis_client) -> None:
    node = RegistrationReport(redis_client, "burgernet@127.0.0.2:5071", "127.0.0.1:5060")
    node.report(True, datetime.now(UTC))
    enqueue(redis_client, [Batch(queue_name(Channel.EMAIL, "normal"), (1,))], delay=600)
    with worker_process(tmp_path, database_url, redis_server.url, "status-1") as worker:
        result = status()
        assert result.exit_code == 0, result.output
        assert "workers   1 alive\n  status-1 " in result.output
        assert "queues    1 of 13 in use" in result.output
        assert "  burgernet@127.0.0.2:5071 at 127.0.0.1:5060: registered" in result.output
        assert result.output.rstrip().endswith("all is well")
        report = json.loads(status("--json").output)
        assert report["ok"] is True and report["problems"] == []
        [alive] = report["workers"]
        assert (alive["name"], alive["alive"], alive["state"]) == ("status-1", True, "idle")

        node.report(False, datetime.now(UTC))
        unregistered = status()
        assert unregistered.exit_code == 1
        assert "127.0.0.1:5060: NOT REGISTERED" in unregistered.output
        assert "SIP node burgernet@127.0.0.2:5071 is not registered at 127.0.0.1:5060" \
            in unregistered.output
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    assert workers(redis_client, datetime.now(UTC)) == []
