"""PostgreSQL restarted mid-action: the workers, the web app and an IVR node reconnect by
themselves, and every message reaches the carrier exactly once.

A throwaway cluster of the test's own is stopped (pg_ctl's fast mode, or immediate: no
checkpoint, crash recovery at the start) while two real workers send an action to the
Twilio-compatible fake, whose answers take long enough that sends are in flight when the
database goes: their outcomes cannot be recorded, their leases run out, and reclaim finds
them at the carrier (recorded as sent, not sent again). Batches that could not claim are put
back on the queues from the outbox. `burgernet web` and `burgernet sip`, never restarted,
answer /readyz, a logged-in console page and a call routed by postcode afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from core.models import DeliveryStatus
from core.redis_server import EmbeddedRedis, free_port
from core.settings import Settings
from fakes.twilio import Behaviour, FakeTwilio, FakeTwilioServer
from outbound.fanout import start_action
from outbound.queues import enqueue
from outbound.runtime import build_runtime
from tests.conftest import MELDKAMER_CONFIG
from tests.faults.carrier import TRIALS
from tests.faults.postgres import (
    Cluster,
    cluster,
    console_works,
    first_times,
    logged_in,
    seed_staff,
    wait_until,
    web,
    web_env,
)
from tests.integration.outbox import (
    assert_each_sent_once,
    prepared_database,
    start_worker,
    statuses,
    until_answered,
    worker_env,
)
from tests.sip.conftest import Kamailio, SippRun, free_udp_port
from tests.sip.conftest import kamailio as kamailio  # noqa: F401 (fixtures of SIP peers)
from tests.sip.conftest import sipp as sipp  # noqa: F401
from tests.sip.test_free_number import NUMBERS, caller_scenario

#: Runs the full variant (FAULT_FULL=1): both shutdown modes, a longer outage.
FULL = os.environ.get("FAULT_FULL") == "1"
#: How long the database stays down: longer than a lease (outbound.claim.LEASE) and than the
#: first retry of a failed job (outbound.queues), so that leases run out and retried jobs
#: fail again while it is away.
DOWN_S = 30.0 if FULL else 7.0
#: Every delivery is sent within this after the database is back (sending the rest of the
#: action, at 20 a second, included), not at the failed jobs' second retry (30 s later).
DONE_WITHIN = 20.0


@pytest.fixture
def meldkamer_port() -> int:
    return free_udp_port()


@pytest.fixture
def kamailio_routes(meldkamer_port: int) -> dict[str, int]:
    return {NUMBERS["MN"]: meldkamer_port}


@pytest.fixture
def postgres() -> Iterator[Cluster]:
    directory = Path(tempfile.mkdtemp(prefix="burgernet-fault-pg-"))
    try:
        with cluster(directory) as server:
            yield server
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _sent(url: str) -> int:
    try:
        return statuses(url)[DeliveryStatus.SENT]
    except Exception:  # the database is away
        return -1


def _routed(metrics_port: int) -> float:
    """Calls the IVR node put through to Midden-Nederland by postcode."""
    try:
        text = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    except requests.RequestException:
        return 0.0
    return sum(s.value for family in text_string_to_metric_families(text)
               for s in family.samples if s.name == "burgernet_inbound_calls_total"
               and s.labels.get("meldkamer") == "MN" and s.labels.get("reason") == "postcode")


def _sip_node(url: str, home: Path, proxy: Kamailio, metrics_port: int
              ) -> subprocess.Popen[bytes]:
    """`burgernet sip`, once it registered at PROXY."""
    env = {**os.environ, "BURGERNET_HOME": str(home), "DATABASE_URL": url,
           "METRICS_PORT": str(metrics_port), "SIP_PROXY": f"{proxy.host}:{proxy.port}",
           "SIP_RTP_PORTS": "41200-41300", "TTS": "espeak",
           "MELDKAMER_CONFIG": str(MELDKAMER_CONFIG), "SECRET_KEY": "k"}
    log = home / "sip.log"
    with log.open("ab") as out:
        node = subprocess.Popen([sys.executable, "-m", "core.cli", "sip"], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    wait_until(lambda: node.poll() is None and "registered as burgernet" in log.read_text(),
               30, "the SIP node registered")
    return node


def _more_sent(url: str) -> Callable[[], bool]:
    """Whether a delivery was recorded as sent since the first count that succeeds (the
    count before the stop may not hold what was committed just before it)."""
    first: list[int] = []

    def more() -> bool:
        count = _sent(url)
        if count < 0:
            return False
        if not first:
            first.append(count)
        return count > first[0]
    return more


def _found_at_carrier(home: Path) -> int:
    """Deliveries the workers' reclaim found at the carrier and recorded as sent (their
    batches could not record what the carrier had taken)."""
    return sum(int(n) for path in home.glob("worker-*.log")
               for n in re.findall(r"reclaimed: (\d+) deliveries the provider had taken",
                                   path.read_text()))


def _ready(base: str) -> bool:
    try:
        return requests.get(f"{base}/readyz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(TRIALS))
@pytest.mark.parametrize("mode", ["fast", "immediate"] if FULL else ["immediate"])
def test_a_postgres_restart_loses_nothing_and_everyone_reconnects(
        tmp_path: Path, postgres: Cluster, kamailio: Kamailio,  # noqa: F811
        sipp: Callable[..., SippRun], meldkamer_port: int, mode: str,  # noqa: F811
        trial: int) -> None:
    url = postgres.url
    action_id = prepared_database(url)
    seed_staff(url)
    server = EmbeddedRedis(tmp_path / "redis").start()
    metrics_port = free_port()
    workers: list[subprocess.Popen[bytes]] = []
    node = None
    fake = FakeTwilio(Behaviour(latency_ms=1000))
    try:
        node = _sip_node(url, tmp_path, kamailio, metrics_port)
        with FakeTwilioServer(fake) as carrier, \
                web(web_env(url, server.url, tmp_path, free_port()),
                    tmp_path / "web.log") as served:
            base = served.base
            env = worker_env(url, server, tmp_path, carrier, rate="20")
            runtime = build_runtime(Settings.from_env(env))
            started = start_action(runtime.writer, action_id, now=datetime.now(UTC))
            enqueue(runtime.redis, [replace(b, delivery_ids=b.delivery_ids[i:i + 10])
                                    for b in started.batches
                                    for i in range(0, len(b.delivery_ids), 10)])
            runtime.close()
            browser = logged_in(base)
            workers = [start_worker(env, log=tmp_path / f"worker-{n}.log") for n in range(2)]
            wait_until(lambda: len(fake.records) >= 40, 60, "two seconds of sending")
            postgres.stop(mode)
            in_flight = carrier.open_connections()
            stopped = time.monotonic()
            away = requests.get(f"{base}/readyz", timeout=10)
            assert away.status_code == 503 and away.json()["checks"]["database"] != "ok"
            time.sleep(max(0.0, DOWN_S - (time.monotonic() - stopped)))
            postgres.start()
            restarted = time.monotonic()
            meldkamer = sipp("uas_answer_then_bye.xml", port=meldkamer_port, timeout=60)
            caller = sipp(str(caller_scenario(tmp_path, "3441#")), service="burgernet",
                          timeout=60)
            times = first_times({
                "worker": _more_sent(url),
                "web": lambda: _ready(base) and console_works(base, browser),
                "ivr": lambda: _routed(metrics_port) == 1,
                "done": lambda: _sent(url) == started.deliveries}, 90)
            assert caller.wait(70) == 0, caller.report() + (tmp_path / "sip.log").read_text()
            assert meldkamer.wait(10) == 0, meldkamer.report()
            assert [w.poll() for w in workers] == [None, None], "a worker exited"
            for worker in workers:
                worker.terminate()
            assert [worker.wait(30) for worker in workers] == [0, 0]
            until_answered(carrier)
            count = assert_each_sent_once(url, action_id, carrier, started.deliveries)
            found = _found_at_carrier(tmp_path)
            assert found > 0, "no send whose outcome the restart lost was found at the carrier"
            print(f"\nFAULT postgres-restart-{mode} trial={trial} messages={count} lost=0 "
                  f"duplicated=0 recover_s={times['worker'] - restarted:.1f}")
            print(f"FAULT postgres-restart-{mode}-web trial={trial} messages=0 lost=0 "
                  f"duplicated=0 recover_s={times['web'] - restarted:.1f}")
            print(f"FAULT postgres-restart-{mode}-ivr trial={trial} messages=1 lost=0 "
                  f"duplicated=0 recover_s={times['ivr'] - restarted:.1f}")
            print(f"  {in_flight} requests in flight at the stop, {found} of whose outcomes "
                  "were found at the carrier; everything sent "
                  f"{times['done'] - restarted:.1f} s after the restart")
    finally:
        if node is not None:
            node.send_signal(signal.SIGINT)
            node.wait(15)
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        server.stop()
    assert times["done"] - restarted <= DONE_WITHIN
