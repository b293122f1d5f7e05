"""The carrier answers 503 to everything for a while, then recovers.

Two real workers send an urgent action (120 participants: SMS, calls, push) through the
Twilio-compatible fake at 20 a second per sender. Mid-send the fake answers every request
503 for OUTAGE seconds (30 with FAULT_FULL=1). The workers' breakers hold the sends back
(`outbound.breaker`): few requests reach the carrier and the workers' CPU stays low during
the outage (no hot loop); no message counts a failed attempt, so none is marked failed; once
the carrier answers again everything is delivered, each message once.
"""

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.models import DeliveryStatus
from core.redis_server import EmbeddedRedis
from core.settings import Settings
from fakes.twilio import FakeTwilioServer
from outbound.breaker import OPEN_MOST, TRIP_AFTER
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

OUTAGE = 30.0 if FULL else 8.0
WORKERS = 2
#: The workers' CPU during the outage, all together, as a share of one core.
MOST_CPU = 0.20


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(TRIALS))
def test_a_carrier_answering_503_for_a_while_loses_nothing_and_sends_nothing_twice(
        tmp_path: Path, new_database_url: Callable[[], str], redis_server: EmbeddedRedis,
        trial: int) -> None:
    url = new_database_url()
    action_id = prepared_database(url)
    with FakeTwilioServer() as fake:
        env = worker_env(url, redis_server, tmp_path, fake, rate="20")
        runtime = build_runtime(Settings.from_env(env))
        runtime.redis.flushdb()
        started = start_action(runtime.writer, action_id, now=datetime.now(UTC))
        enqueue(runtime.redis, started.batches)
        runtime.close()
        workers = [start_worker(env, log=tmp_path / f"worker-{n}.log") for n in range(WORKERS)]
        try:
            wait_for(lambda: len(fake.fake.records) >= 20, 60, "the first sends")
            fake.fake.behaviour.outage = True
            cpu_before, began = cpu_seconds(workers), time.monotonic()
            time.sleep(OUTAGE)
            cpu = cpu_seconds(workers) - cpu_before
            outage = time.monotonic() - began
            fake.fake.behaviour.outage = False
            refused = fake.fake.unavailable
            done = wait_for(
                lambda: statuses(url) == {DeliveryStatus.SENT: started.deliveries}, 120,
                "every delivery sent after the outage")
            assert [w.poll() for w in workers] == [None] * WORKERS, "a worker exited"
        finally:
            for worker in workers:
                worker.terminate()
            codes = [worker.wait(30) for worker in workers]
        until_answered(fake)
        counted = count(url, action_id, fake)
        share = cpu / outage
        fault_line("carrier-503", trial, counted, done - began - outage,
                   outage_s=f"{outage:.0f}", cpu=f"{share:.1%}", refused=refused)
        assert_each_sent_once(url, action_id, fake, started.deliveries)
    assert codes == [0] * WORKERS
    assert (counted.lost, counted.duplicated) == (0, 0)
    assert share < MOST_CPU, f"the workers used {share:.0%} of a core in the outage"
    # per worker, sender and opening of its breaker: a few refusals, one probe after each
    openings = 2 + OUTAGE / OPEN_MOST * 2
    assert refused <= WORKERS * 2 * (TRIP_AFTER + 2) * openings
