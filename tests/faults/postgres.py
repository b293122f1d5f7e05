"""What the PostgreSQL and web fault tests share: a throwaway PostgreSQL cluster of their own
(scripts/pg.sh) that they stop and start again, `burgernet web` as a real gunicorn process,
and a staff member logged in to it over HTTP as a browser would be (session cookie, CSRF
token from the form)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from core.db import make_engine, session_factory
from core.redis_server import free_port
from core.seed import DEMO_PASSWORD, seed_demo
from tests.conftest import MELDKAMER_CONFIG

PG_SH = Path(__file__).resolve().parents[2] / "scripts" / "pg.sh"
CENTRALIST = "centralist@example.org"


#: A crash must not lose a transaction whose commit returned (the suite's cluster trades
#: that for speed): the server then holds what the workers were told it holds.
DURABLE = "-c synchronous_commit=on"


class Cluster:
    """A PostgreSQL cluster in DIRECTORY on PORT, for one test: started, stopped (in pg_ctl's
    fast or immediate mode) and started again with its data."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://burgernet@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        subprocess.run([str(PG_SH), "start", str(self.directory), str(self.port)], check=True,
                       env={**os.environ, "PG_OPTIONS": os.environ.get("FAULT_PG", DURABLE)})

    def stop(self, mode: str = "fast") -> None:
        subprocess.run([str(PG_SH), "stop", str(self.directory), mode], check=True)

    def log(self) -> str:
        path = self.directory / "log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


@contextmanager
def cluster(directory: Path) -> Iterator[Cluster]:
    """A cluster of its own in DIRECTORY (outside pytest's private tmp_path when run as root:
    pg.sh hands the directory to the postgres user), stopped afterwards."""
    server = Cluster(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop("immediate")


def seed_staff(url: str) -> None:
    """The demo staff users (admin, centralist, municipality officer), no participants."""
    engine = make_engine(url)
    try:
        seed_demo(session_factory(engine, writer=True), size=0)
    finally:
        engine.dispose()


def web_env(url: str, redis_url: str, home: Path, port: int, workers: int = 2,
            **more: str) -> dict[str, str]:
    """What `burgernet web` needs, serving on PORT with WORKERS gunicorn processes."""
    return {**os.environ, "BURGERNET_HOME": str(home), "DATABASE_URL": url,
            "REDIS_URL": redis_url, "SECRET_KEY": "fault-test-secret-key",
            "MELDKAMER_CONFIG": str(MELDKAMER_CONFIG), "WEB_PORT": str(port),
            "WEB_WORKERS": str(workers), "TTS": "espeak", **more}


@dataclass(frozen=True)
class Web:
    """A running `burgernet web`: its base URL and gunicorn's master process."""

    base: str
    pid: int


@contextmanager
def web(env: dict[str, str], log: Path) -> Iterator[Web]:
    """`burgernet web` running with ENV (its output to LOG), once it answers; stopped
    (SIGTERM) afterwards."""
    base = f"http://127.0.0.1:{env['WEB_PORT']}"
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "core.cli", "web"], env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _answers(f"{base}/livez", process), 60, "burgernet web answers")
        yield Web(base, process.pid)
        assert process.poll() is None, "burgernet web exited"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answers(url: str, process: subprocess.Popen[bytes]) -> bool:
    assert process.poll() is None, "burgernet web exited"
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def wait_until(condition: Callable[[], bool], seconds: float, what: str,
               every: float = 0.1) -> float:
    """Poll CONDITION until it holds; the moment it did (time.monotonic)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(every)
    return time.monotonic()


def first_times(conditions: dict[str, Callable[[], bool]], seconds: float,
                every: float = 0.1) -> dict[str, float]:
    """Poll every one of CONDITIONS until each has held once; the moment each first did
    (time.monotonic), by name."""
    deadline = time.monotonic() + seconds
    times: dict[str, float] = {}
    while len(times) < len(conditions):
        for name, condition in conditions.items():
            if name not in times and condition():
                times[name] = time.monotonic()
        missing = sorted(set(conditions) - set(times))
        assert time.monotonic() < deadline or not missing, f"not within {seconds} s: {missing}"
        time.sleep(every)
    return times


def form_token(page: str) -> str:
    """The CSRF token of the (first) form on PAGE."""
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or \
        re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page[-2000:]
    return match.group(1)


def logged_in(base: str, email: str = CENTRALIST) -> requests.Session:
    """A browser-like session of EMAIL, logged in through the login form."""
    browser = requests.Session()
    page = browser.get(f"{base}/login", timeout=10)
    reply = browser.post(f"{base}/login", timeout=10, allow_redirects=False,
                         data={"email": email, "password": DEMO_PASSWORD,
                               "csrf_token": form_token(page.text)})
    assert reply.status_code == 302, reply.text[-2000:]
    return browser


def console_works(base: str, browser: requests.Session) -> bool:
    """The console's list of actions answers the session as a logged-in centralist."""
    try:
        reply = browser.get(f"{base}/console/", timeout=5, allow_redirects=False)
    except requests.RequestException:
        return False
    return reply.status_code == 200 and "/console/actions/new" in reply.text
