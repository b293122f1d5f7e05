"""`burgernet sip` as deployed: a process that registers at Kamailio and answers the free
number until it is stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from core.models import CallRecord
from tests.conftest import MELDKAMER_CONFIG
from tests.sip.conftest import free_udp_port
from tests.sip.test_free_number import NUMBERS, caller_scenario


@pytest.fixture
def meldkamer_port() -> int:
    return free_udp_port()


@pytest.fixture
def kamailio_routes(meldkamer_port: int) -> dict[str, int]:
    return {NUMBERS["MN"]: meldkamer_port}


def test_the_sip_command_answers_the_free_number_and_stops_cleanly(
        tmp_path: Path, kamailio, sipp, meldkamer_port, sip_sessions) -> None:
    url = sip_sessions.kw["bind"].url.render_as_string(hide_password=False)
    env = {**os.environ, "BURGERNET_HOME": str(tmp_path), "DATABASE_URL": url,
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
        meldkamer = sipp("uas_answer_then_bye.xml", port=meldkamer_port, timeout=60)
        caller = sipp(str(caller_scenario(tmp_path, "3441#")), service="burgernet", timeout=60)
        assert caller.wait(70) == 0, caller.report() + (tmp_path / "sip.log").read_text()
        assert meldkamer.wait(10) == 0, meldkamer.report()
    finally:
        server.send_signal(signal.SIGINT)
        code = server.wait(15)
        log.close()
    assert code == 0, (tmp_path / "sip.log").read_text()
    with sip_sessions() as session:
        record = session.scalar(select(CallRecord).order_by(CallRecord.id.desc()).limit(1))
        assert record.transport == "sip" and record.outcome == "connected"
        assert record.routing_reason.startswith("postcode")
