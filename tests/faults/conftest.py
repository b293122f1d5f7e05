"""The fault suite: real processes (workers, web, IVR nodes, Redis, PostgreSQL, Kamailio)
killed, restarted or starved while they work, and what reached the carrier counted.

`scripts/test.sh` runs each fault once, in one of its two passes (FAULT_PASS names the pass;
unset, every fault runs): those whose servers are PostgreSQL's or many in the PostgreSQL
pass, the rest in the SQLite pass, so that the two passes take about as long.
FAULT_TRIALS and FAULT_FULL=1 give the long variants whose results are in
docs/reliability.md."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
#: The faults of the PostgreSQL pass.
POSTGRESQL_PASS = frozenset({
    "test_postgres_restart.py", "test_two_hosts.py", "test_sentinel_failover.py",
    "test_ivr_node_killed.py", "test_web_killed.py", "test_smtp_down.py"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    which = os.environ.get("FAULT_PASS")
    if which not in {"sqlite", "postgresql"}:
        return
    keep, drop = [], []
    for item in items:
        mine = item.path.parent == HERE and item.path.name.startswith("test_")
        if mine and (item.path.name in POSTGRESQL_PASS) != (which == "postgresql"):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
