"""The real `burgernet web` (gunicorn) with its access log in a file: a reaction link's token,
a code or a number in a URL, and a referrer carrying them, never reach the log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.redis_server import EmbeddedRedis, free_port
from outbound.links import reaction_token
from tests.conftest import MELDKAMER_CONFIG
from web.access_log import private_atoms, used_atoms

SECRET = "test-secret-key"
TOKEN = reaction_token(SECRET, 987654)
CODE, PHONE = "482913", "0612345678"


@dataclass
class Web:
    url: str
    access_log: Path
    error_log: Path


@pytest.fixture
def log_format() -> str:
    return "text"


@pytest.fixture
def web(tmp_path: Path, database_url: str, redis_server: EmbeddedRedis,
        log_format: str) -> Iterator[Web]:
    """`burgernet web` as deployed, its stdout (the access log) and stderr in files."""
    port = free_port()
    env = {**os.environ, "BURGERNET_HOME": str(tmp_path), "DATABASE_URL": database_url,
           "REDIS_URL": redis_server.url, "SECRET_KEY": SECRET, "WEB_PORT": str(port),
           "WEB_WORKERS": "1", "MELDKAMER_CONFIG": str(MELDKAMER_CONFIG), "TTS": "espeak",
           "LOG_LEVEL": "DEBUG", "LOG_FORMAT": log_format}
    site = Web(f"http://127.0.0.1:{port}", tmp_path / "access.log", tmp_path / "error.log")
    with site.access_log.open("wb") as out, site.error_log.open("wb") as err:
        process = subprocess.Popen([sys.executable, "-m", "core.cli", "web"], env=env,
                                   stdout=out, stderr=err, start_new_session=True)
        try:
            _wait_for(site.url + "/livez", process)
            yield site
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _wait_for(url: str, process: subprocess.Popen[bytes], seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "burgernet web exited early"
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {seconds} s")


def _request(url: str, *, data: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    opener = urllib.request.build_opener(_NoRedirect())
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


@pytest.mark.slow
def test_the_access_log_holds_no_reaction_token_code_or_number(web: Web) -> None:
    link = f"{web.url}/reactie/{TOKEN}"
    status, headers = _request(link + "?lang=en", headers={"Referer": link})
    assert status == 400  # a genuine token of a delivery that does not exist
    assert headers["Referrer-Policy"] == "no-referrer" and headers["Cache-Control"] == "no-store"
    assert _request(link, data=b"text=ik+zag+iets")[0] == 400  # no CSRF token
    assert _request(f"{web.url}/deelnemen/code?code={CODE}&lang=en")[0] == 302
    assert _request(f"{web.url}/deelnemen/aanmelden?phone={PHONE}",
                    headers={"Referer": f"{web.url}/deelnemen/code?code={CODE}"})[0] == 200
    deadline = time.monotonic() + 10
    while "/deelnemen/aanmelden" not in web.access_log.read_text() \
            and time.monotonic() < deadline:  # gunicorn writes the line after the answer
        time.sleep(0.1)
    access = web.access_log.read_text()
    assert 'GET /reactie/***?lang=en HTTP/1.1" 400' in access
    assert 'POST /reactie/*** HTTP/1.1" 400' in access
    assert "GET /deelnemen/code?code=***&lang=en HTTP/1.1" in access
    assert "GET /deelnemen/aanmelden?phone=*** HTTP/1.1" in access
    everything = access + web.error_log.read_text()
    for secret in (TOKEN, TOKEN.split(".")[0], CODE, PHONE, "612345678"):
        assert secret not in everything, secret


@pytest.mark.slow
@pytest.mark.parametrize("log_format", ["json"])
def test_with_log_format_json_every_line_is_json_redacted_and_names_its_request(
        web: Web) -> None:
    link = f"{web.url}/reactie/{TOKEN}"
    assert _request(f"{link}?phone={PHONE}", headers={"X-Request-ID": "lb-4711-abcdef"})[0] \
        == 400
    deadline = time.monotonic() + 10
    while "/reactie/" not in web.access_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    access = [json.loads(line) for line in web.access_log.read_text().splitlines()]
    errors = [json.loads(line) for line in web.error_log.read_text().splitlines()]
    [line] = [entry for entry in access if "/reactie/" in entry["message"]]
    assert line["logger"] == "gunicorn.access" and line["request_id"] == "lb-4711-abcdef"
    assert 'GET /reactie/***?phone=*** HTTP/1.1" 400' in line["message"]
    assert {entry["logger"] for entry in errors} >= {"gunicorn.error"}
    everything = web.access_log.read_text() + web.error_log.read_text()
    for secret in (TOKEN, TOKEN.split(".")[0], PHONE, "612345678"):
        assert secret not in everything, secret


def test_a_custom_log_format_gets_its_query_referrer_cookie_and_environment_masked() -> None:
    link = f"/reactie/{TOKEN}"
    atoms = {"q": f"code={CODE}&lang=en", "{referer}i": f"https://bn.example{link}",
             "{cookie}i": "session=eyJwb3J0YWxfcGVuZGluZyI6eyJwaG9uZSI6IiszMTYxMjM0NTY3OCJ9fQ",
             "{raw_uri}e": f"{link}?phone={PHONE}", "{x-forwarded-for}i": "192.0.2.7",
             "s": "200", "B": 1287}
    used = used_atoms('%(q)s "%({Referer}i)s" %({Cookie}i)s %({RAW_URI}e)s %(s)s %(B)s')
    assert private_atoms(atoms, used) == {
        "q": "code=***&lang=en", "{referer}i": "https://bn.example/reactie/***",
        "{cookie}i": "***", "{raw_uri}e": "/reactie/***?phone=***", "s": "200", "B": 1287}
