"""`burgernet sip` tells Redis whether it is registered, so `burgernet status` on any host
shows it; the report goes when the node stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from core.redis_server import EmbeddedRedis
from ivr.registration import PREFIX, registrations
from tests.conftest import MELDKAMER_CONFIG


def test_a_running_sip_node_reports_its_registration_until_it_stops(
        tmp_path: Path, kamailio, sip_sessions, redis_server: EmbeddedRedis,
        redis_client: redis.Redis) -> None:
    url = sip_sessions.kw["bind"].url.render_as_string(hide_password=False)
    env = {**os.environ, "BURGERNET_HOME": str(tmp_path), "DATABASE_URL": url,
           "REDIS_URL": redis_server.url, "SIP_PROXY": f"{kamailio.host}:{kamailio.port}",
           "SIP_RTP_PORTS": "41200-41300", "TTS": "espeak",
           "MELDKAMER_CONFIG": str(MELDKAMER_CONFIG), "SECRET_KEY": "k"}
    log = (tmp_path / "sip.log").open("w+")
    server = subprocess.Popen([sys.executable, "-m", "core.cli", "sip"], env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not (nodes := registrations(redis_client)):
            assert server.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "sip.log").read_text()
            time.sleep(0.1)
        [node] = nodes
        assert node.node.startswith("burgernet@127.0.0.1:") and node.registered
        assert node.proxy == f"{kamailio.host}:{kamailio.port}"
    finally:
        server.send_signal(signal.SIGINT)
        code = server.wait(15)
        log.close()
    assert code == 0, (tmp_path / "sip.log").read_text()
    assert registrations(redis_client) == [] and not redis_client.keys(PREFIX + "*")
