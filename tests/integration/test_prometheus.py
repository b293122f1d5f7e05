"""A real Prometheus (Debian's) scrapes `burgernet run` as docs/ops/prometheus.yml says, with
the alert rules loaded: its query API shows the series of the web app and of the worker, every
rule evaluates, and every query of the dashboard is one Prometheus accepts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.redis_server import free_port
from tests.conftest import MELDKAMER_CONFIG
from tests.test_ops_rules import DASHBOARD, OPS, RULES

QUICK = "1s"


def _get(url: str, data: bytes | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, data=data, timeout=5) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _until(what: str, check: Callable[[], Any], seconds: float = 60) -> Any:
    """CHECK's first truthy answer within SECONDS; connection errors count as not yet."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            answer = check()
        except OSError:
            answer = None
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds} s")
        time.sleep(0.25)


def _stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> str:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return process.communicate(timeout=30)[0] or ""
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.communicate()[0] or ""


def _scrape_configuration(web: int, worker: int) -> dict[str, Any]:
    """docs/ops/prometheus.yml, on the ports of this run and scraped every second."""
    config = yaml.safe_load((OPS / "prometheus.yml").read_text(encoding="utf-8"))
    config["global"] = {"scrape_interval": QUICK, "evaluation_interval": QUICK}
    config["rule_files"] = [str(RULES)]
    targets = {"burgernet-web": [f"127.0.0.1:{web}"], "burgernet-worker": [f"127.0.0.1:{worker}"]}
    config["scrape_configs"] = [job for job in config["scrape_configs"]
                                if job["job_name"] in targets]
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": targets[job["job_name"]]}]
    return config


@pytest.fixture
def burgernet(tmp_path: Path, new_database_url: Callable[[], str]) -> Iterator[dict[str, Any]]:
    """`burgernet run` with its worker's metrics on a port of its own."""
    web, worker = free_port(), free_port()
    env = {**os.environ, "BURGERNET_HOME": str(tmp_path), "DATABASE_URL": new_database_url(),
           "WEB_PORT": str(web), "METRICS_PORT": str(worker), "WEB_WORKERS": "2",
           "MELDKAMER_CONFIG": str(MELDKAMER_CONFIG), "TTS": "espeak"}
    env.pop("REDIS_URL", None)
    process = subprocess.Popen([sys.executable, "-m", "core.cli", "run", "--participants", "200"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        _until("the web app", lambda: process.poll() is None
               and _get(f"http://127.0.0.1:{web}/livez")[0] == 200, 120)
        assert process.poll() is None
        yield {"env": env, "web": web, "worker": worker, "home": tmp_path}
    finally:
        output = _stop(process, signal.SIGINT)
    assert process.returncode == 0, output[-3000:]


@pytest.fixture
def prometheus(tmp_path: Path, burgernet: dict[str, Any]) -> Iterator[str]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: install Debian's prometheus (scripts/setup.sh test)"
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(_scrape_configuration(burgernet["web"],
                                                           burgernet["worker"])))
    port = free_port()
    process = subprocess.Popen([binary, f"--config.file={config}",
                                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _until("prometheus ready", lambda: process.poll() is None
               and _get(f"{url}/-/ready")[0] == 200, 30)
        yield url
    finally:
        output = _stop(process)
    assert "level=error" not in output, output[-3000:]


def _query(prometheus: str, expression: str) -> list[dict[str, Any]]:
    status, body = _get(f"{prometheus}/api/v1/query?"
                        + urllib.parse.urlencode({"query": expression}))
    answer = json.loads(body)
    assert status == 200 and answer["status"] == "success", (expression, answer)
    return answer["data"]["result"]


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "core.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_prometheus_scrapes_the_web_app_and_the_worker(burgernet: dict[str, Any],
                                                       prometheus: str) -> None:
    env = {**burgernet["env"],
           "REDIS_URL": (burgernet["home"] / "var" / "redis.url").read_text().strip()}
    action = _cli(env, "action", "create", "--kind", "amber", "--national", "--title", "Kind kwijt",
                  "--meldkamer", "MN").strip()
    _cli(env, "action", "start", action)
    web = f"http://127.0.0.1:{burgernet['web']}"
    assert _get(f"{web}/webhooks/twilio/status", data=b"x=1")[0] == 403  # unsigned, timed

    def up() -> bool:
        jobs = {r["metric"]["job"]: r["value"][1] for r in _query(prometheus, "up")}
        return jobs == {"burgernet-web": "1", "burgernet-worker": "1"}

    _until("both targets up", up, 30)
    expected = {
        'sum(burgernet_deliveries_total{job="burgernet-worker", status="sent"})': "sent",
        'sum(burgernet_provider_requests_total{provider="console", outcome="ok"})': "requests",
        'sum(burgernet_rate_limit_wait_seconds_count{job="burgernet-worker"})': "waits",
        'burgernet_queue_jobs{job="burgernet-web", queue="sms-urgent"}': "queue",
        'burgernet_queue_oldest_job_age_seconds{queue="voice-urgent"}': "age",
        'burgernet_outbox_backlog{status="queued"}': "backlog",
        'burgernet_workers{job="burgernet-web"} == 1': "workers",
        'burgernet_scrape_source_up{source="database"} == 1': "database",
        'burgernet_verification_sms_hour_budget == 300': "budget",
        'burgernet_webhook_seconds_count{route="/webhooks/twilio/status", status="4xx"}': "hook",
        'process_cpu_seconds_total{job="burgernet-worker"}': "cpu",
    }
    for expression in expected:
        _until(expression, lambda e=expression: _query(prometheus, e), 30)
    sent = float(_query(prometheus, next(iter(expected)))[0]["value"][1])
    assert sent > 0

    def rules_evaluated() -> dict[str, str]:
        groups = json.loads(_get(f"{prometheus}/api/v1/rules")[1])["data"]["groups"]
        rules = {r["name"]: r["health"] for g in groups for r in g["rules"]}
        return rules if rules and all(h != "unknown" for h in rules.values()) else {}

    health = _until("the rules evaluated", rules_evaluated, 30)
    assert set(health.values()) == {"ok"}, health
    assert set(health) == {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"]
                           for r in g["rules"]}
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    for target in (t for panel in panels for t in panel["targets"]):
        _query(prometheus, target["expr"])  # accepted by Prometheus's parser
