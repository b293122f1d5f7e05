"""The whole system as the README starts it (`burgernet run`), driven by headless Chromium.

Chromium is Debian's (`/usr/bin/chromium`); Playwright only drives it and downloads nothing.
With UPDATE_SCREENSHOTS=1 the tests also refresh the screenshots in docs/screenshots/.

The demo population makes the pages look as they do for a user, but no test counts on it:
which participants the seed draws, their languages and quiet hours, change with the seed and
with the hour the suite runs at (non-urgent messages wait for the end of quiet hours). Every
expectation about who gets what is about NEIGHBOURS, participants of the tests' own near the
Dom: Dutch and English, on SMS and e-mail, without quiet hours, so it holds at any hour.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy.orm import Session

from core.db import make_engine
from core.models import Channel, Language
from core.redis_server import free_port
from core.seed import DEMO_PASSWORD
from tests.conftest import MELDKAMER_CONFIG
from tests.population import FIRST_NUMBER, UTRECHT, Neighbour, add_people, spot

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
#: Without the background-networking flags Chromium keeps trying Google's hosts.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed")

DUTCH = Neighbour(FIRST_NUMBER, *spot(UTRECHT, 300, 45), (Channel.SMS, Channel.EMAIL))
ENGLISH = Neighbour(FIRST_NUMBER + 1, *spot(UTRECHT, 400, 200), (Channel.SMS, Channel.EMAIL),
                    Language.EN)
#: Within 500 m of the Dom: inside every area these tests draw.
NEIGHBOURS = (DUTCH, ENGLISH)


@dataclass
class System:
    """A running `burgernet run`: its URL, home directory and what it would have sent."""

    url: str
    home: Path

    def sent(self) -> list[dict[str, Any]]:
        """Messages the demo providers recorded instead of sending (a line the worker is
        still writing is left for the next read)."""
        path = self.home / "var" / "console-outbox.jsonl"
        if not path.exists():
            return []
        lines = path.read_text(encoding="utf-8").split("\n")
        return [json.loads(line) for line in lines[:-1] if line]

    def wait_sent(self, match: Callable[[dict[str, Any]], bool], count: int = 1,
                  seconds: float = 30) -> list[dict[str, Any]]:
        """The recorded messages MATCH accepts, once there are at least COUNT (the worker
        sends in the background)."""
        deadline = time.monotonic() + seconds
        while True:
            found = [message for message in self.sent() if match(message)]
            if len(found) >= count or time.monotonic() > deadline:
                assert len(found) >= count, f"{len(found)} of {count} messages within {seconds} s"
                return found
            time.sleep(0.2)


def _wait_for(url: str, process: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"burgernet run exited early ({process.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {seconds} s")


@contextmanager
def running_system(home: Path, database_url: str, participants: int = 3000,
                   **extra_env: str) -> Iterator[System]:
    """`burgernet run` in HOME on DATABASE_URL with EXTRA_ENV, until the block ends."""
    port = free_port()
    env = {**os.environ, "BURGERNET_HOME": str(home), "DATABASE_URL": database_url,
           "WEB_PORT": str(port), "MELDKAMER_CONFIG": str(MELDKAMER_CONFIG),
           "WEB_WORKERS": "1", "TTS": "off", **extra_env}
    log = (home / "run.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "core.cli", "run", "--participants",
                                str(participants)],
                               env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        _wait_for(f"http://127.0.0.1:{port}/healthz", process)
        engine = make_engine(database_url)  # the demo data is in: the neighbours join it
        with Session(engine) as session, session.begin():
            add_people(session, NEIGHBOURS, datetime.now(UTC))
        engine.dispose()
        yield System(f"http://127.0.0.1:{port}", home)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory,
           new_database_url: Callable[[], str]) -> Iterator[System]:
    with running_system(tmp_path_factory.mktemp("system"), new_database_url()) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Per module: Playwright's sync API keeps an event loop running in this thread while it
    is open, which would break the asyncio.run of tests that come after."""
    expect.set_options(timeout=15_000)  # a loaded 2-core machine renders slowly
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@contextmanager
def fresh_page(browser: Browser, system: System) -> Iterator[Page]:
    """A page in a fresh browser profile (no cookies) at a laptop's size; it fails on any
    JavaScript error and on anything the Content-Security-Policy blocked."""
    context = browser.new_context(base_url=system.url, viewport={"width": 1280, "height": 860},
                                  locale="nl-NL", timezone_id="Europe/Amsterdam")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text else None)
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def page(browser: Browser, system: System) -> Iterator[Page]:
    """A fresh browser profile, failing on any page error."""
    with fresh_page(browser, system) as page:
        yield page


Screenshot = Callable[..., None]


@pytest.fixture
def screenshot() -> Screenshot:
    """Saves the whole page (or its top HEIGHT pixels, or only the element SELECTOR) to
    docs/screenshots/NAME.png when UPDATE_SCREENSHOTS=1."""
    def take(page: Page, name: str, height: int | None = None,
             selector: str | None = None) -> None:
        if os.environ.get("UPDATE_SCREENSHOTS") != "1":
            return
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        if selector is not None:
            page.locator(selector).screenshot(path=str(SCREENSHOTS / f"{name}.png"))
            return
        clip = None
        if height is not None:
            width = page.viewport_size["width"] if page.viewport_size else 1280
            clip = {"x": 0, "y": 0, "width": width,
                    "height": min(height, page.evaluate("document.body.scrollHeight"))}
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True, clip=clip)
    return take


def log_in(page: Page, email: str, password: str = DEMO_PASSWORD) -> None:
    """Logs in through the login form, as a person would."""
    page.goto("/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/")
