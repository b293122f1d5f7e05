"""The carrier answers every request after 5 s, within the client's 10 s timeout.

Two real workers send an urgent action to 600 participants (375 SMS, 225 calls, 300 push)
through the Twilio-compatible fake, SMS at 100 a second and calls at 20 a second. Each
message is delivered once; the calls keep their rate (over any five seconds, allowing for
pauses of two seconds on a busy machine); and with 5 s answers the SMS go no faster than the
sends a worker keeps in flight allow (`outbound.sender.MAX_IN_FLIGHT` per batch: 200 / 5 s
= 40 a second per worker), whatever their rate. The messages a second are printed for
docs/reliability.md.
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
from outbound.sender import MAX_IN_FLIGHT
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

CROWD = neighbourhood(600, within_m=5_000)
LATENCY = 5.0
WORKERS = 2
SMS_RATE, VOICE_RATE = 100, 20
#: Seconds over which the rate is counted at the carrier, and the pause on the way allowed.
WINDOW, PAUSE = 5.0, 2.0


def _most_within(moments: list[float], seconds: float) -> int:
    """The most MOMENTS within any window of SECONDS."""
    moments = sorted(moments)
    most, first = 0, 0
    for last, moment in enumerate(moments):
        while moment - moments[first] >= seconds:
            first += 1
        most = max(most, last - first + 1)
    return most


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(TRIALS))
def test_a_slow_carrier_gets_everything_once_at_the_rate_and_the_concurrency(
        tmp_path: Path, new_database_url: Callable[[], str], redis_server: EmbeddedRedis,
        trial: int) -> None:
    url = new_database_url()
    action_id = prepared_database(url, CROWD)
    with FakeTwilioServer(FakeTwilio(Behaviour(latency_ms=LATENCY * 1000))) as fake:
        env = {**worker_env(url, redis_server, tmp_path, fake, rate=str(SMS_RATE)),
               "VOICE_RATE": str(VOICE_RATE)}
        runtime = build_runtime(Settings.from_env(env))
        runtime.redis.flushdb()
        started = start_action(runtime.writer, action_id, now=datetime.now(UTC))
        enqueue(runtime.redis, started.batches)
        runtime.close()
        began = time.monotonic()
        workers = [start_worker(env, log=tmp_path / f"worker-{n}.log") for n in range(WORKERS)]
        try:
            done = wait_for(lambda: statuses(url) == {DeliveryStatus.SENT: started.deliveries},
                            180, "every delivery sent")
        finally:
            for worker in workers:
                worker.terminate()
            codes = [worker.wait(30) for worker in workers]
        until_answered(fake)
        carrier = fake.fake
        counted = count(url, action_id, fake)
        arrivals = {kind: [at for k, at in carrier.arrivals if k == kind]
                    for kind in ("message", "call")}
        sms = arrivals["message"]
        sms_per_s = len(sms) / (max(sms) - min(sms) + LATENCY)
        fault_line("carrier-slow-5s", trial, counted, done - began,
                   sms_per_s=f"{sms_per_s:.1f}", in_flight=carrier.most_in_flight,
                   calls_in_1s=_most_within(arrivals["call"], 1.0),
                   calls_in_5s=_most_within(arrivals["call"], 5.0))
        assert_each_sent_once(url, action_id, fake, started.deliveries)
    assert codes == [0] * WORKERS
    assert (counted.lost, counted.duplicated) == (0, 0)
    # The cap holds when each send is let go (`outbound.throttle.SendWindow`, by Redis's
    # clock). What the carrier sees also carries the pauses of the processes on the way (a
    # busy event loop, here four helpers' tests on two cores, the fake in this process): a
    # send let go late arrives with the next ones. If those pauses last at most PAUSE, no
    # window of W seconds at the carrier holds more than RATE * (W + PAUSE); a limiter that
    # let two workers send at the full rate each would put twice as many there.
    assert _most_within(arrivals["call"], WINDOW) <= VOICE_RATE * (WINDOW + PAUSE)
    assert _most_within(sms, WINDOW) <= SMS_RATE * (WINDOW + PAUSE)
    assert carrier.most_in_flight <= WORKERS * MAX_IN_FLIGHT
    assert sms_per_s <= WORKERS * MAX_IN_FLIGHT / LATENCY < SMS_RATE
