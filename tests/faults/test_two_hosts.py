"""Several hosts, simulated on loopback (issue 14.8): two "hosts" (a BURGERNET_HOME each,
two `burgernet worker` processes each, every worker with its own metrics port) share one
PostgreSQL (a cluster of the test's own) and the Redis Sentinel set. An action sent across
both keeps the carrier's rate and sends every message once.

docker-compose.yml describes the same deployment: `test_compose_runs_what_the_two_hosts_run`
keeps its Redis, sentinel and worker commands and settings identical to the ones run here.
"""

import math
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import make_engine
from core.models import Channel, Delivery, DeliveryStatus
from core.redis_server import free_port
from core.settings import Settings, sentinel_addresses
from fakes.twilio import FakeTwilioServer
from outbound.fanout import start_action
from outbound.queues import enqueue
from outbound.runtime import build_runtime
from tests.faults.hosts import ROOT, Admissions, busiest_second, own_postgres
from tests.faults.sentinels import (
    DOWN_AFTER_MS,
    FAILOVER_TIMEOUT_MS,
    MASTER,
    SentinelSet,
    data_node_command,
    sentinel_command,
    sentinel_config,
    sentinel_env,
)
from tests.integration.outbox import (
    assert_each_sent_once,
    prepared_database,
    statuses,
    until_answered,
    wait_for,
)

HOSTS = ("host-a", "host-b")
WORKERS_PER_HOST = 2
#: The carrier's rate for SMS and for calls, each (messages a second).
RATE = 10
#: The limiter admits at most RATE sends in any sliding second, by Redis's clock, at the
#: moment each request leaves (`outbound.throttle.SendWindow`): that is asserted exactly. The
#: carrier stamps a request when it has read it; between the two lies a transit time that
#: varies from request to request (event loops and the scheduler of a loaded two-core
#: machine). A second at the carrier may then hold the sends admitted within one second plus
#: that spread: at RATE, ceil(spread * RATE) more. The spread is measured, and the carrier's
#: busiest second may exceed RATE by that much, and by at least one.
#: The worker as docker-compose.yml runs it (`burgernet` is `python -m core.cli`).
WORKER_COMMAND = ["burgernet", "worker"]
PASSWORD = "two-hosts"
#: How every process finds Redis: through the sentinels alone (no REDIS_URL).
REDIS_SETTINGS = {"REDIS_SENTINELS", "REDIS_SENTINEL_MASTER", "REDIS_PASSWORD"}


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "core.cli", *WORKER_COMMAND[1:]],
                                env=env, stdout=out, stderr=subprocess.STDOUT)


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return reply.read().decode()


@pytest.mark.slow
def test_an_action_sent_from_two_hosts_keeps_the_rate_and_sends_each_message_once(
        tmp_path: Path) -> None:
    workers: list[tuple[str, int, subprocess.Popen[bytes]]] = []
    with own_postgres() as url, SentinelSet(tmp_path / "redis", password=PASSWORD) as redis_set, \
            FakeTwilioServer() as fake:
        try:
            action_id = prepared_database(url)
            homes = {host: tmp_path / host for host in HOSTS}
            for home in homes.values():
                home.mkdir()
            envs = {host: sentinel_env(url, redis_set, home, fake, rate=str(RATE))
                    for host, home in homes.items()}
            assert {k for k in envs[HOSTS[0]] if k.startswith("REDIS_")} == REDIS_SETTINGS
            runtime = build_runtime(Settings.from_env(envs[HOSTS[0]]))
            started = start_action(runtime.writer, action_id, now=datetime.now(UTC))
            # batches of ten: both hosts take a share of every channel
            enqueue(runtime.redis_for("a test"),
                    [replace(b, delivery_ids=b.delivery_ids[i:i + 10])
                     for b in started.batches for i in range(0, len(b.delivery_ids), 10)])
            runtime.close()
            windows = {kind: f"window:{runtime.sender_key(channel)}"
                       for kind, channel in (("message", Channel.SMS), ("call", Channel.VOICE))}
            admissions = Admissions(runtime.redis_for("a test"), windows.values()).__enter__()
            for host, home in homes.items():
                for n in range(WORKERS_PER_HOST):
                    port = free_port()
                    workers.append((host, port, _start({**envs[host], "METRICS_PORT": str(port)},
                                                       home / f"worker-{n}.log")))
            began = time.monotonic()
            done = wait_for(lambda: statuses(url) == {DeliveryStatus.SENT: started.deliveries},
                            120, "every delivery sent")
            for _host, port, _process in workers:
                assert "burgernet_deliveries_total" in _metrics(port)
            assert [process.poll() for *_, process in workers] == [None] * len(workers)
            for *_, process in workers:
                process.terminate()
            assert [process.wait(30) for *_, process in workers] == [0] * len(workers)
            until_answered(fake)
            admissions.__exit__()
            jobs = {host: sum(log.read_text().count("Job OK")
                              for log in homes[host].glob("worker-*.log")) for host in HOSTS}
            assert_each_sent_once(url, action_id, fake, started.deliveries)
            assert all(jobs[host] > 0 for host in HOSTS), "a host sent nothing"
            delivery_of = _deliveries_by_sid(url, action_id)
            for kind, window in windows.items():
                admitted = admissions.seen[window]
                arrived = {delivery_of[r.sid]: r.at for r in fake.fake.records if r.kind == kind}
                assert set(admitted) == set(arrived), "a send passed no shared limiter"
                transit = [arrived[d] - admitted[d] for d in arrived]
                spread = max(transit) - min(transit)
                limiter, carrier = busiest_second(admitted.values()), busiest_second(
                    arrived.values())
                moments = sorted(arrived.values())
                print(f"\ntwo hosts, {kind}: {len(arrived)} at {RATE}/s, achieved "
                      f"{(len(moments) - 1) / (moments[-1] - moments[0]):.2f}/s (sent from "
                      f"{moments[0] - began:.1f} s to {moments[-1] - began:.1f} s after the "
                      f"workers' start, done at {done - began:.1f} s); busiest second "
                      f"{limiter} at the limiter, "
                      f"{carrier} at the carrier (transit spread {spread * 1000:.0f} ms); "
                      f"batches by host {jobs}")
                assert limiter <= RATE
                assert carrier <= RATE + max(1, math.ceil(spread * RATE))
        finally:
            for *_, process in workers:
                if process.poll() is None:
                    process.kill()
                    process.wait()


def _deliveries_by_sid(url: str, action_id: int) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return {sid: delivery for sid, delivery in session.execute(
                select(Delivery.provider_id, Delivery.id).where(
                    Delivery.action_id == action_id, Delivery.provider_id.is_not(None)))}
    finally:
        engine.dispose()


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_runs_what_the_two_hosts_run() -> None:
    """docker-compose.yml's Redis primary and replica, its three sentinels and its workers
    run the commands and the Redis settings the test above runs (with the service names and
    standard ports of a deployment instead of loopback and free ports)."""
    compose = _compose()
    services = compose["services"]
    password = services["redis"]["environment"]["REDIS_PASSWORD"]
    assert password.startswith("${REDIS_PASSWORD:?")
    assert services["redis"]["command"] == data_node_command(6379, "/data", password=password)
    assert services["redis-replica"]["command"] == data_node_command(
        6379, "/data", replica_of=("redis", 6379), password=password)
    sentinels = sorted(name for name in services if name.startswith("sentinel-"))
    assert len(sentinels) == 3
    for name in sentinels:
        [config] = services[name]["configs"]
        assert config["target"] in services[name]["command"][-1]
        assert services[name]["command"][-1].endswith(
            "exec " + " ".join(sentinel_command("/data/sentinel.conf")))
        assert compose["configs"][config["source"]]["content"].splitlines() == sentinel_config(
            26379, ("redis", 6379), password=password, down_after_ms=DOWN_AFTER_MS,
            failover_timeout_ms=FAILOVER_TIMEOUT_MS)
    worker = services["worker"]
    assert worker["command"] == WORKER_COMMAND
    env = {**compose["x-app"]["environment"], **worker["environment"]}
    assert {k for k in env if k.startswith("REDIS_")} == REDIS_SETTINGS
    assert sentinel_addresses(env["REDIS_SENTINELS"]) == tuple(
        (name, 26379) for name in sentinels)
    assert env["REDIS_SENTINEL_MASTER"] == MASTER
    assert env["REDIS_PASSWORD"] == password
    assert env["METRICS_PORT"].isdigit()
    for name in ("web", "worker"):  # nothing of them reaches Redis but through the sentinels
        environment = {**compose["x-app"]["environment"], **services[name].get("environment", {})}
        assert "REDIS_URL" not in environment

