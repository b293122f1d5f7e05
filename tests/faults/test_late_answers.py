"""A carrier that answers after the client's timeout: the message is looked up before it is
sent again, so a late answer never makes a duplicate.

Two real workers send an action to 600 participants (900 messages, 600 of them SMS and calls)
through the Twilio-compatible fake, which refuses 1 % with a 500 and 1 % with a 429 and
takes 2 % only after 12 s, beyond the provider's 10 s timeout. Every message reaches the
fake exactly once (before the look-up, each late answer was a duplicate: 614 at the fake).
"""

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.models import DeliveryStatus
from core.redis_server import EmbeddedRedis
from core.settings import Settings
from fakes.twilio import Behaviour, FakeTwilio, FakeTwilioServer
from outbound.fanout import start_action
from outbound.queues import enqueue
from outbound.runtime import build_runtime
from tests.faults.carrier import TRIALS, count, fault_line
from tests.integration.outbox import (
    assert_each_sent_once,
    prepared_database,
    start_worker,
    statuses,
    until_answered,
    wait_for,
    worker_env,
)
from tests.population import neighbourhood

#: 600 participants.
CROWD = neighbourhood(600, within_m=5_000)


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(TRIALS))
def test_late_answers_are_looked_up_and_never_sent_twice(
        tmp_path: Path, new_database_url: Callable[[], str], redis_server: EmbeddedRedis,
        trial: int) -> None:
    url = new_database_url()
    action_id = prepared_database(url, CROWD)
    carrier = FakeTwilio(Behaviour(error_rate=0.01, throttle_rate=0.01, late_rate=0.02,
                                   late_ms=12_000, seed=trial))
    with FakeTwilioServer(carrier) as fake:
        env = worker_env(url, redis_server, tmp_path, fake, rate="0")
        runtime = build_runtime(Settings.from_env(env))
        runtime.redis.flushdb()
        started = start_action(runtime.writer, action_id, now=datetime.now(UTC))
        enqueue(runtime.redis, started.batches)
        runtime.close()
        began = time.monotonic()
        workers = [start_worker(env, log=tmp_path / f"worker-{n}.log") for n in range(2)]
        try:
            done = wait_for(
                lambda: statuses(url) == {DeliveryStatus.SENT: started.deliveries}, 240,
                "every delivery sent")
        finally:
            for worker in workers:
                worker.terminate()
            codes = [worker.wait(30) for worker in workers]
        until_answered(fake)
        fault_line("carrier-late-answers", trial, count(url, action_id, fake), done - began,
                   late=carrier.late, refused=carrier.rejected)
        assert carrier.late > 0
        at_carrier = assert_each_sent_once(url, action_id, fake, started.deliveries)
        print(f"\n{started.deliveries} deliveries ({at_carrier} SMS and calls), "
              f"{carrier.late} answered late, {carrier.rejected} refused: "
              f"all sent once in {done - began:.1f} s")
    assert codes == [0, 0]
