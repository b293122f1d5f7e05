"""`burgernet web` with several gunicorn processes: /metrics counts what all of them did, also
what a process that was replaced did, and starts from an emptied directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.redis_server import EmbeddedRedis, free_port
from tests.conftest import MELDKAMER_CONFIG

ROUTE = (("route", "/webhooks/twilio/status"), ("status", "4xx"))


def _status(url: str, data: bytes | None = None) -> int:
    try:
        with urllib.request.urlopen(url, data=data, timeout=5) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code


def _wait_until_up(url: str, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "burgernet web exited"
        try:
            if _status(url) == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {seconds} s")


def _webhooks(base: str, count: int) -> None:
    """COUNT unsigned status callbacks (each refused, each timed), 8 at a time."""
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: _status(f"{base}/webhooks/twilio/status", b"x=1"),
                              range(count)))
    assert codes == [403] * count


def _counted(base: str) -> float:
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == "burgernet_webhook_seconds_count"
               and tuple(sorted(s.labels.items())) == ROUTE)


def _wait_for_exit(pid: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"process {pid} did not exit")


def _pids(directory: Path) -> set[int]:
    return {int(path.stem.rsplit("_", 1)[1]) for path in directory.glob("histogram_*.db")}


@pytest.mark.slow
def test_every_gunicorn_process_is_counted_once(tmp_path: Path, database_url: str,
                                                redis_server: EmbeddedRedis) -> None:
    metrics_dir = tmp_path / "var" / "metrics"
    metrics_dir.mkdir(parents=True)
    (metrics_dir / "counter_1.db").write_bytes(b"left by the last run")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "BURGERNET_HOME": str(tmp_path), "DATABASE_URL": database_url,
           "REDIS_URL": redis_server.url, "SECRET_KEY": "test-secret-key",
           "MELDKAMER_CONFIG": str(MELDKAMER_CONFIG), "WEB_PORT": str(port), "WEB_WORKERS": "2",
           "TTS": "espeak"}
    web = subprocess.Popen([sys.executable, "-m", "core.cli", "web"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_until_up(f"{base}/livez", web)
        assert not (metrics_dir / "counter_1.db").exists()
        _webhooks(base, 30)
        assert _counted(base) == 30
        served = min(_pids(metrics_dir))  # a file appears with a process's first count
        os.kill(served, signal.SIGTERM)  # gunicorn replaces the process
        _wait_for_exit(served)
        _webhooks(base, 30)
        assert _counted(base) == 60  # the replaced process's count stays
        assert len(_pids(metrics_dir)) >= 2
    finally:
        web.send_signal(signal.SIGTERM)
        try:
            _out, errors = web.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            web.kill()
            _out, errors = web.communicate()
    assert web.returncode == 0, errors.decode()[-3000:]
