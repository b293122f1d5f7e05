"""The alert rules and the dashboard in docs/ops: promtool checks the rules and runs their own
cases, and neither they nor the dashboard name a metric that we do not export."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml
from prometheus_client import ProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.metrics import Metrics
from core.settings import Settings
from outbound.metrics import StateCollector
from outbound.runtime import Runtime

OPS = Path(__file__).resolve().parents[1] / "docs" / "ops"
RULES, CASES = OPS / "alerts.yml", OPS / "alerts.test.yml"
DASHBOARD = OPS / "grafana-dashboard.json"
#: What Prometheus adds to every scrape, and its alerts.
PROMETHEUS = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS"}
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum",
                                                            "_created"),
            "gauge": ("",), "summary": ("", "_count", "_sum", "_created"), "info": ("_info",)}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "inf", "nan"}


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: install Debian's prometheus (scripts/setup.sh test)"
    return found


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL EXPRESSION reads (not its functions, labels or keywords)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', "", expression)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    return {name for name in re.findall(r"(?<![\w:.])[A-Za-z_:][\w:]*(?![\w:])(?!\s*\()",
                                        text) if name.lower() not in KEYWORDS}


def _families(collector: Collector) -> Iterator[tuple[str, str]]:
    for family in collector.collect():
        yield family.name, family.type


@pytest.fixture
def exported(settings: Settings, engine: Engine, sessions: sessionmaker[Session],
             redis_client: redis.Redis) -> set[str]:
    """Every sample name the product exports: the metric objects, the state read at scrape
    time and the process collector of workers and SIP nodes."""
    runtime = Runtime(settings, engine, sessions, redis_client, metrics=Metrics())
    names = set(PROMETHEUS)
    for collector in (runtime.metrics.registry, StateCollector(runtime),
                      ProcessCollector(registry=None)):
        for name, kind in _families(collector):
            names |= {name + suffix for suffix in SUFFIXES[kind]}
    return names


def _rule_expressions() -> list[tuple[str, str]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [(rule["alert"], rule["expr"]) for group in groups for rule in group["rules"]]


def _dashboard_expressions() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    return [(panel["title"], target["expr"]) for panel in panels for target in panel["targets"]]


def test_the_name_finder_reads_promql() -> None:
    expression = ('sum by (provider, le) (rate(burgernet_x_total{outcome!="ok", a=~"b(c)"}[5m]'
                  ' offset 1h)) / on (provider) group_left (job) max(up) > bool 0.05 '
                  'and histogram_quantile(0.9, y_bucket)')
    assert metric_names(expression) == {"burgernet_x_total", "up", "y_bucket"}


def test_the_rules_pass_promtool_and_their_own_cases() -> None:
    checked = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(_rule_expressions())} rules found" in checked.stdout
    tested = subprocess.run([promtool(), "test", "rules", str(CASES)], capture_output=True,
                            text=True, timeout=60)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    cases = yaml.safe_load(CASES.read_text(encoding="utf-8"))["tests"]
    tested_alerts = {case["alertname"] for test in cases for case in test["alert_rule_test"]
                     if case.get("exp_alerts")}
    assert tested_alerts == {name for name, _expr in _rule_expressions()}


def test_the_example_scrape_configuration_is_valid() -> None:
    checked = subprocess.run([promtool(), "check", "config", str(OPS / "prometheus.yml")],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("source", ["rules", "dashboard"])
def test_rules_and_dashboard_read_only_metrics_we_export(source: str,
                                                         exported: set[str]) -> None:
    expressions = _rule_expressions() if source == "rules" else _dashboard_expressions()
    assert len(expressions) >= 7
    unknown = {(where, name) for where, expression in expressions
               for name in metric_names(expression) if name not in exported}
    assert unknown == set()
    named = {name for _where, expression in expressions for name in metric_names(expression)}
    assert named and all(name in exported for name in named)


def test_a_rule_on_a_metric_we_do_not_export_is_caught(exported: set[str]) -> None:
    assert "burgernet_queue_oldest_job_age_seconds" in exported
    assert metric_names("max(burgernet_queue_oldest_job_seconds) > 30") - exported == {
        "burgernet_queue_oldest_job_seconds"}
