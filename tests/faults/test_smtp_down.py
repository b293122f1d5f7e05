"""The SMTP server is down for a while, then back.

Two real workers send an AMBER alert (every channel: e-mail to a real SMTP server on
loopback, SMS and calls to the Twilio-compatible fake, push to the console) to 120
participants, e-mail at 5 a second. Mid-send the SMTP server stops (connections refused) for
DOWN seconds (60 with FAULT_FULL=1) and starts again on its port. A refused connection took
nothing: the e-mail breaker holds the sends back without counting attempts
(`outbound.breaker`), so no e-mail is marked failed, and once the server is back every
e-mail reaches it once. (A connection dropped after the end of DATA is another matter: see
`outbound.providers.smtp` and docs/reliability.md.)
"""

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import update

from core.db import make_engine
from core.models import Action, ActionKind, DeliveryStatus
from core.redis_server import EmbeddedRedis
from core.settings import Settings
from fakes.smtp import SmtpServer
from fakes.twilio import FakeTwilioServer
from outbound.fanout import start_action
from outbound.queues import enqueue
from outbound.runtime import build_runtime
from tests.faults.carrier import FULL, TRIALS, count, cpu_seconds, fault_line
from tests.integration.outbox import (
    assert_each_sent_once,
    prepared_database,
    start_worker,
    statuses,
    until_answered,
    wait_for,
    worker_env,
)

DOWN = 60.0 if FULL else 10.0
WORKERS = 2


def _amber(url: str, action_id: int) -> None:
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(update(Action).where(Action.id == action_id)
                           .values(kind=ActionKind.AMBER))
    engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(TRIALS))
def test_mail_queued_while_the_smtp_server_is_down_goes_out_once_after_it(
        tmp_path: Path, new_database_url: Callable[[], str], redis_server: EmbeddedRedis,
        trial: int) -> None:
    url = new_database_url()
    action_id = prepared_database(url)
    _amber(url, action_id)
    smtp = SmtpServer().start()
    try:
        with FakeTwilioServer() as fake:
            env = {**worker_env(url, redis_server, tmp_path, fake, rate="20"),
                   "EMAIL_PROVIDER": "smtp", "SMTP_HOST": "127.0.0.1",
                   "SMTP_PORT": str(smtp.port), "EMAIL_RATE": "5"}
            runtime = build_runtime(Settings.from_env(env))
            runtime.redis.flushdb()
            started = start_action(runtime.writer, action_id, now=datetime.now(UTC))
            enqueue(runtime.redis, started.batches)
            runtime.close()
            workers = [start_worker(env, log=tmp_path / f"worker-{n}.log")
                       for n in range(WORKERS)]
            try:
                wait_for(lambda: len(smtp.inbox.messages) >= 5, 60, "the first e-mails")
                smtp.stop()
                cpu_before, began = cpu_seconds(workers), time.monotonic()
                time.sleep(DOWN)
                cpu = cpu_seconds(workers) - cpu_before
                smtp.start()
                down = time.monotonic() - began
                before = len(smtp.inbox.messages)
                done = wait_for(
                    lambda: statuses(url) == {DeliveryStatus.SENT: started.deliveries}, 120,
                    "every delivery sent once the SMTP server is back")
            finally:
                for worker in workers:
                    worker.terminate()
                codes = [worker.wait(30) for worker in workers]
            until_answered(fake)
            counted = count(url, action_id, fake, smtp.inbox)
            fault_line("smtp-down", trial, counted, done - began - down,
                       down_s=f"{down:.0f}", cpu=f"{cpu / down:.1%}",
                       emails_before=before, emails=len(smtp.inbox.messages))
            assert_each_sent_once(url, action_id, fake, started.deliveries)
    finally:
        smtp.stop()
    assert codes == [0] * WORKERS
    assert len(smtp.inbox.messages) > before, "the outage should leave e-mail waiting"
    assert (counted.lost, counted.duplicated) == (0, 0)
