"""Workers outlive a Redis restart, and an emptied Redis is refilled from the outbox.

A real redis-server is killed (SIGKILL) while two real workers send an action, and started
again on the same port: with its append-only file (the persistence the README recommends),
or with its data lost. The workers stay up, reconnect, find that Redis may have lost jobs
(`outbound.reclaim.RedisWatch`) and put every queued delivery back on the queues: every
message reaches the fake carrier exactly once.
"""

import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.models import DeliveryStatus
from core.redis_server import EmbeddedRedis
from core.settings import Settings
from fakes.twilio import FakeTwilioServer
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

#: An emptied Redis is refilled from the outbox within this (issue 14).
REFILLED_WITHIN = 30.0


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(TRIALS))
@pytest.mark.parametrize("keep_data", [True, False], ids=["with-its-data", "emptied"])
def test_workers_outlive_a_redis_restart_and_nothing_is_lost_or_sent_twice(
        tmp_path: Path, new_database_url: Callable[[], str], keep_data: bool,
        trial: int) -> None:
    url = new_database_url()
    action_id = prepared_database(url)
    data = tmp_path / "redis"
    server = EmbeddedRedis(data, appendonly=keep_data).start()
    workers = []
    try:
        with FakeTwilioServer() as fake:
            env = worker_env(url, server, tmp_path, fake, rate="20")
            runtime = build_runtime(Settings.from_env(env))
            started = start_action(runtime.writer, action_id, now=datetime.now(UTC))
            # many jobs waiting on the queues when Redis goes, not three running
            enqueue(runtime.redis, [replace(b, delivery_ids=b.delivery_ids[i:i + 10])
                                    for b in started.batches
                                    for i in range(0, len(b.delivery_ids), 10)])
            runtime.close()
            workers = [start_worker(env, log=tmp_path / f"worker-{n}.log") for n in range(2)]
            wait_for(lambda: len(fake.fake.records) >= 40, 60, "two seconds of sending")
            server.kill()
            time.sleep(1)
            if not keep_data:
                shutil.rmtree(data)
            server = EmbeddedRedis(data, port=server.port, appendonly=keep_data).start()
            restarted = time.monotonic()
            done = wait_for(
                lambda: statuses(url) == {DeliveryStatus.SENT: started.deliveries}, 90,
                "every delivery sent after the restart")
            assert [w.poll() for w in workers] == [None, None], "a worker exited"
            for worker in workers:
                worker.terminate()
            assert [worker.wait(30) for worker in workers] == [0, 0]
            until_answered(fake)
            print(f"\nRedis restarted {'with its data' if keep_data else 'empty'}: "
                  f"everything sent {done - restarted:.1f} s after the restart")
            fault_line(f"redis-restart-{'aof' if keep_data else 'emptied'}", trial,
                       count(url, action_id, fake), done - restarted)
            assert_each_sent_once(url, action_id, fake, started.deliveries)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        server.stop()
    assert done - restarted <= REFILLED_WITHIN
