"""A web process killed while the console is in use: the next request works with the same
session, a form whose request died is sent again without making anything twice, and /metrics
still answers with the dead process marked dead.

`burgernet web` runs three gunicorn processes; a centralist logs in through the login form.
One process is SIGKILLed while idle, then the one that holds a new-action form's request
(killed while it reads the request's body); the browser sends the form again, twice, and
starts the draft twice: one draft, one start.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from sqlalchemy import func, select

from core.db import make_engine, session_factory
from core.models import Action, AuditEvent
from core.redis_server import EmbeddedRedis, free_port
from core.reference import load_reference
from core.schema import ensure_schema
from core.settings import DEFAULT_DATA_DIR
from tests.conftest import MELDKAMER_CONFIG
from tests.faults.carrier import TRIALS
from tests.faults.postgres import (
    console_works,
    form_token,
    logged_in,
    seed_staff,
    wait_until,
    web,
    web_env,
)

WORKERS = 3
#: The next request works within this after a process was killed.
RECOVERED_WITHIN = 5.0


def _children(parent: int) -> set[int]:
    """The processes whose parent is PARENT (gunicorn's workers)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                found.add(int(entry.name))
    return found


def _sockets(match: Callable[[int, int], bool]) -> set[str]:
    """Inodes of the TCP sockets whose local and remote ports MATCH."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)
        if match(local, remote):
            inodes.add(fields[9])
    return inodes


def _owner(inode: str) -> int | None:
    """The process that holds the socket INODE."""
    target = f"socket:[{inode}]"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) == target:
                    return int(entry.name)
        except OSError:
            continue
    return None


def _serving(web_port: int, client_port: int) -> int:
    """The gunicorn process that holds the connection from CLIENT_PORT."""
    inodes = _sockets(lambda local, remote: local == web_port and remote == client_port)
    owners = {pid for pid in map(_owner, inodes) if pid is not None}
    assert len(owners) == 1, owners
    return owners.pop()


def _form(browser: requests.Session, base: str) -> dict[str, str]:
    """The new-action form as the console shows it, filled in."""
    page = browser.get(f"{base}/console/actions/new", timeout=10).text
    submission = re.search(r'name="submission" value="([0-9a-f]{32})"', page)
    assert submission, page[-2000:]
    return {"csrf_token": form_token(page), "submission": submission.group(1),
            "kind": "suspect", "urgency": "urgent", "meldkamer": "MN",
            "title_nl": "Man in rode jas", "description_nl": "Lang, donker haar.",
            "lat": "52.0907", "lon": "5.1214", "radius_m": "1500"}


def _half_sent(base: str, browser: requests.Session, form: dict[str, str]) -> socket.socket:
    """The form's POST with half its body sent: a process now waits for the rest."""
    body = urlencode(form).encode()
    cookies = "; ".join(f"{c.name}={c.value}" for c in browser.cookies)
    host = base.removeprefix("http://")
    head = (f"POST /console/actions/new HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nCookie: {cookies}\r\n\r\n").encode()
    connection = socket.create_connection(("127.0.0.1", int(host.rsplit(":", 1)[1])), 5)
    connection.sendall(head + body[:len(body) // 2])
    return connection


def _post(browser: requests.Session, url: str, form: dict[str, str]) -> requests.Response:
    """FORM sent to URL; sent again when the connection it reused was reset (it was held
    by the killed process), as a browser resends on a reused connection, or as the user
    does after an error page."""
    for _attempt in range(2):
        try:
            return browser.post(url, data=form, timeout=10, allow_redirects=False)
        except requests.ConnectionError:
            continue
    return browser.post(url, data=form, timeout=10, allow_redirects=False)


def _drafts(url: str) -> int:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            return session.scalar(select(func.count(Action.id))) or 0
    finally:
        engine.dispose()


def _starts(url: str, action_id: int) -> int:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            return session.scalar(select(func.count(AuditEvent.id)).where(
                AuditEvent.verb == "start", AuditEvent.object_id == str(action_id))) or 0
    finally:
        engine.dispose()


@pytest.fixture
def database(new_database_url: Callable[[], str]) -> Iterator[str]:
    url = new_database_url()
    engine = make_engine(url)
    ensure_schema(engine)
    with session_factory(engine, writer=True)() as session, session.begin():
        load_reference(session, DEFAULT_DATA_DIR, MELDKAMER_CONFIG)
    engine.dispose()
    seed_staff(url)
    yield url


def _metrics_answer(base: str) -> bool:
    reply = requests.get(f"{base}/metrics", timeout=5)
    return reply.status_code == 200 and "burgernet_" in reply.text


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(TRIALS))
def test_a_killed_web_process_costs_no_login_and_no_second_draft(
        tmp_path: Path, database: str, redis_server: EmbeddedRedis, trial: int) -> None:
    port = free_port()
    metrics = tmp_path / "var" / "metrics"
    with web(web_env(database, redis_server.url, tmp_path, port, workers=WORKERS),
             tmp_path / "web.log") as served:
        base, master = served.base, served.pid
        browser = logged_in(base)
        assert console_works(base, browser)
        workers = _children(master)
        assert len(workers) == WORKERS

        idle = min(workers)
        os.kill(idle, signal.SIGKILL)
        killed = time.monotonic()
        answered = wait_until(lambda: console_works(base, browser), 30,
                              "the console with the same session")
        print(f"\nFAULT web-process-killed-idle trial={trial} messages=0 lost=0 duplicated=0 "
              f"recover_s={answered - killed:.1f}")
        assert answered - killed <= RECOVERED_WITHIN

        form = _form(browser, base)
        before = _drafts(database)
        connection = _half_sent(base, browser, form)
        serving = wait_until(lambda: bool(_sockets(
            lambda local, remote: local == port and remote == connection.getsockname()[1])),
            5, "the server took the connection")
        assert serving
        victim = _serving(port, connection.getsockname()[1])
        assert victim in _children(master)
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        connection.settimeout(10)
        try:
            assert connection.recv(4096) == b"", "the killed process answered"
        except ConnectionResetError:
            pass
        connection.close()
        sent = _post(browser, f"{base}/console/actions/new", form)
        recovered = time.monotonic()
        assert sent.status_code == 302, sent.text[-2000:]
        draft = base + sent.headers["Location"].removeprefix(base)
        again = _post(browser, f"{base}/console/actions/new", form)
        assert base + again.headers["Location"].removeprefix(base) == draft
        assert _drafts(database) == before + 1
        action_id = int(draft.rsplit("/", 1)[1])
        start = {"csrf_token": form_token(browser.get(draft, timeout=10).text)}
        for _ in range(2):
            assert _post(browser, f"{base}/console/actions/{action_id}/start",
                         start).status_code == 302
        assert "er is niets opnieuw verstuurd" in browser.get(draft, timeout=10).text
        assert _starts(database, action_id) == 1
        print(f"FAULT web-process-killed-mid-request trial={trial} messages=1 lost=0 "
              f"duplicated=0 recover_s={recovered - killed:.1f}")

        wait_until(lambda: len(_children(master)) == WORKERS, 30, "gunicorn replaced them")
        # gunicorn's child_exit hook marks them dead: their live gauges stop counting
        for dead in (idle, victim):
            assert not list(metrics.glob(f"gauge_live*_{dead}.db")), "not marked dead"
        assert _metrics_answer(base)
    assert "child_exit" not in (tmp_path / "web.log").read_text(), "the hook failed"
