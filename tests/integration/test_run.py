"""`burgernet run` as the README starts it: its own Redis, web and worker, stopped by Ctrl-C."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from core.redis_server import free_port
from tests.conftest import MELDKAMER_CONFIG


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _wait_for(url: str, process: subprocess.Popen[str], seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "burgernet run exited early"
        try:
            if _get(url)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {seconds} s")


@pytest.mark.slow
def test_run_starts_everything_with_demo_data_and_stops_cleanly(
        tmp_path: Path, new_database_url: Callable[[], str]) -> None:
    port = free_port()
    env = {**os.environ, "BURGERNET_HOME": str(tmp_path), "DATABASE_URL": new_database_url(),
           "WEB_PORT": str(port), "MELDKAMER_CONFIG": str(MELDKAMER_CONFIG), "WEB_WORKERS": "1"}
    env.pop("REDIS_URL", None)
    process = subprocess.Popen([sys.executable, "-m", "core.cli", "run", "--participants", "300"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True,
                               # as a shell starts a background job: SIGINT ignored
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        _wait_for(f"http://127.0.0.1:{port}/healthz", process)
        status, body = _get(f"http://127.0.0.1:{port}/healthz")
        assert '"redis":"ok"' in body.replace(" ", "")
        status, body = _get(f"http://127.0.0.1:{port}/login")
        assert status == 200 and "Inloggen" in body
        redis_url = (tmp_path / "var" / "redis.url").read_text().strip()
        assert redis_url.startswith("redis://127.0.0.1:")
        demo_env = (tmp_path / "var" / "demo.env").read_text().splitlines()
        assert demo_env == [f"REDIS_URL={redis_url}", "SMS_RATE=100", "VOICE_RATE=20"]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            raise AssertionError(f"SIGINT did not stop burgernet run:\n{output}") from None
    assert process.returncode == 0, output
    assert not (tmp_path / "var" / "redis.url").exists()
    assert not (tmp_path / "var" / "demo.env").exists()
    assert f"Burgernet is running: http://127.0.0.1:{port}/" in output
    assert "centralist@example.org" in output
    assert "300 participants with" in output
    redis_port = int(re.search(r"started redis-server on redis://127.0.0.1:(\d+)", output)[1])
    for stopped_port in (redis_port, port):
        with pytest.raises(ConnectionRefusedError), \
                socket.create_connection(("127.0.0.1", stopped_port), 1):
            pass
