"""`burgernet sip` as deployed: a process that registers at Kamailio and answers the free
number until it is stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from core.models import CallRecord
from core.redis_server import free_port
from tests.conftest import MELDKAMER_CONFIG
from tests.sip.conftest import free_udp_port
from tests.sip.test_free_number import NUMBERS, caller_scenario


def _metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
def meldkamer_port() -> int:
    return free_udp_port()


@pytest.fixture
def kamailio_routes(meldkamer_port: int) -> dict[str, int]:
    return {NUMBERS["MN"]: meldkamer_port}


def test_the_sip_command_answers_the_free_number_and_stops_cleanly(
        tmp_path: Path, kamailio, sipp, meldkamer_port, sip_sessions) -> None:
    url = sip_sessions.kw["bind"].url.render_as_string(hide_password=False)
    metrics = free_port()
    env = {**os.environ, "BURGERNET_HOME": str(tmp_path), "DATABASE_URL": url,
           "METRICS_PORT": str(metrics),
           "SIP_PROXY": f"{kamailio.host}:{kamailio.port}", "SIP_RTP_PORTS": "41000-41100",
           "TTS": "espeak", "MELDKAMER_CONFIG": str(MELDKAMER_CONFIG), "SECRET_KEY": "k"}
    log = (tmp_path / "sip.log").open("w+")
    server = subprocess.Popen([sys.executable, "-m", "core.cli", "sip"], env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while "registered as burgernet" not in (tmp_path / "sip.log").read_text():
            assert server.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "sip.log").read_text()
            time.sleep(0.1)
        registered = ("burgernet_sip_registered", (("role", "free_number"),))
        assert _metrics(metrics)[registered] == 1
        meldkamer = sipp("uas_answer_then_bye.xml", port=meldkamer_port, timeout=60)
        caller = sipp(str(caller_scenario(tmp_path, "3441#")), service="burgernet", timeout=60)
        in_call = ("burgernet_calls_in_progress", (("direction", "inbound"),))
        during = set()
        while caller.process.poll() is None and 1 not in during:
            during.add(_metrics(metrics).get(in_call))
            time.sleep(0.05)
        assert caller.wait(70) == 0, caller.report() + (tmp_path / "sip.log").read_text()
        assert meldkamer.wait(10) == 0, meldkamer.report()
        # the node ends its side of the bridge after the peers' BYEs: give it a moment
        deadline = time.monotonic() + 10
        while (after := _metrics(metrics))[in_call] != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert 1 in during and after[in_call] == 0
        assert after[("burgernet_inbound_calls_total", (
            ("meldkamer", "MN"), ("reason", "postcode"), ("transport", "sip")))] == 1
        assert after[("burgernet_prompt_cache_lookups_total", (("result", "miss"),))] > 0
    finally:
        server.send_signal(signal.SIGINT)
        code = server.wait(15)
        log.close()
    assert code == 0, (tmp_path / "sip.log").read_text()
    with sip_sessions() as session:
        record = session.scalar(select(CallRecord).order_by(CallRecord.id.desc()).limit(1))
        assert record.transport == "sip" and record.outcome == "connected"
        assert record.routing_reason.startswith("postcode")
