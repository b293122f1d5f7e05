"""Real SIP peers on loopback: Kamailio (registrar + proxy) and SIPp, on free ports.

Each test gets its own Kamailio (listen port and trunk port picked free, pid and runtime files
under tmp_path), so runs can go in parallel. The SIPp "trunk" of a test listens on
`kamailio.trunk_port`; numbers starting with 0 or + go there, other users to their
registration. Missing binaries fail the tests with the package to install.
"""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from core.db import make_engine, session_factory
from core.reference import load_reference
from core.schema import ensure_schema
from core.settings import DEFAULT_DATA_DIR
from ivr.prompts import load_catalogue
from ivr.sip import SipCall, SipEndpoint
from ivr.tts import PromptRenderer
from tests.conftest import MELDKAMER_CONFIG
from tests.sip.peers import (
    HOST,
    find_binary,
    free_udp_port,
    missing_binary,
    sip_options,
    stop_process,
    wait_bound,
)

DATA = Path(__file__).parent / "data"


def require(binary: str, package: str) -> str:
    path = find_binary(binary, package)
    if path is None:
        pytest.fail(f"{missing_binary(binary, package)} (the SIP tests need real peers on "
                    "loopback)", pytrace=False)
    return path


@dataclass
class Kamailio:
    port: int
    trunk_port: int
    workdir: Path
    host: str = HOST

    def log(self) -> str:
        return (self.workdir / "kamailio.log").read_text(errors="replace")


@pytest.fixture
def kamailio_routes() -> dict[str, int]:
    """Numbers that go to a port of their own instead of the trunk (override in a module)."""
    return {}


@pytest.fixture
def kamailio(tmp_path: Path, kamailio_routes: dict[str, int]) -> Iterator[Kamailio]:
    binary = require("kamailio", "kamailio")
    require("sipp", "sip-tester")
    workdir = tmp_path / "kamailio"
    workdir.mkdir()
    server = Kamailio(port=free_udp_port(), trunk_port=free_udp_port(), workdir=workdir)
    config = workdir / "kamailio.cfg"
    config.write_text((DATA / "kamailio.cfg").read_text()
                      .replace("@PORT@", str(server.port))
                      .replace("@TRUNK_PORT@", str(server.trunk_port))
                      .replace("@ROUTES@", "\n".join(
                          f'    if ($rU == "{number}") {{ $du = "sip:{HOST}:{port}"; '
                          't_relay(); exit; }' for number, port in kamailio_routes.items())))
    with (workdir / "kamailio.log").open("wb") as log:
        process = subprocess.Popen(
            [binary, "-f", str(config), "-DD", "-E", "-P", str(workdir / "kamailio.pid"),
             "-Y", str(workdir), "-w", str(workdir), "-m", "32", "-M", "4"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while sip_options(server.port) != "SIP/2.0 200 OK":
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Kamailio did not answer OPTIONS on {HOST}:{server.port}:\n"
                            f"{server.log()[-3000:]}", pytrace=False)
        yield server
    finally:
        stop_process(process)


@dataclass
class SippRun:
    """One SIPp process running a scenario in the background."""

    scenario: str
    port: int
    media_port: int
    workdir: Path
    process: subprocess.Popen[bytes]
    returncode: int | None = field(default=None)

    def wait(self, timeout: float = 30.0) -> int:
        """SIPp's exit code: 0 when every call of the scenario succeeded."""
        try:
            self.returncode = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_process(self.process)
            pytest.fail(f"SIPp {self.scenario} still running after {timeout:g} s\n"
                        f"{self.report()}", pytrace=False)
        return self.returncode

    def report(self) -> str:
        """SIPp's errors and message trace, for assertion messages."""
        text = []
        for name in ("errors.log", "messages.log", "screen.log"):
            path = self.workdir / name
            if path.exists():
                text.append(f"--- {name}\n{path.read_text(errors='replace')[-6000:]}")
        return "\n".join(text)


@pytest.fixture
def sipp(tmp_path: Path, kamailio: Kamailio) -> Iterator[Callable[..., SippRun]]:
    """Start SIPp scenarios from tests/sip/data: UACs call through Kamailio, a UAS listens on
    PORT (usually `kamailio.trunk_port`)."""
    binary = require("sipp", "sip-tester")
    runs: list[SippRun] = []

    def start(scenario: str, *, port: int | None = None, service: str | None = None,
              uac: bool | None = None, timeout: float = 20.0) -> SippRun:
        is_uac = service is not None if uac is None else uac
        port = port or free_udp_port()
        media_port = free_udp_port(span=4)
        workdir = tmp_path / f"sipp-{len(runs)}-{Path(scenario).stem}"
        workdir.mkdir()
        command = [binary, *([f"{HOST}:{kamailio.port}"] if is_uac else []),
                   "-sf", str(DATA / scenario), "-i", HOST, "-p", str(port),
                   "-mi", HOST, "-mp", str(media_port), "-m", "1", "-nostdin",
                   "-timeout", f"{timeout:g}s", "-timeout_error",
                   "-trace_err", "-error_file", str(workdir / "errors.log"),
                   "-trace_stat", "-stf", str(workdir / "stats.csv"),
                   "-trace_msg", "-message_file", str(workdir / "messages.log")]
        if service is not None:
            command += ["-s", service]
        with (workdir / "screen.log").open("wb") as screen:
            process = subprocess.Popen(command, cwd=workdir, stdout=screen,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        run = SippRun(scenario, port, media_port, workdir, process)
        runs.append(run)
        if not is_uac:
            wait_bound(port, process)
        return run

    yield start
    for run in runs:
        stop_process(run.process)


@pytest.fixture
def endpoint(kamailio: Kamailio) -> Iterator[Callable[..., SipEndpoint]]:
    """Start pyVoIP endpoints registered at the test's Kamailio; stopped afterwards."""
    started: list[SipEndpoint] = []

    def start(username: str, on_call: Callable[[SipCall], None] | None = None) -> SipEndpoint:
        low = random.randrange(20000, 40000, 50)
        sip = SipEndpoint(proxy_host=kamailio.host, proxy_port=kamailio.port, username=username,
                          rtp_ports=(low, low + 40), on_call=on_call)
        sip.start(timeout=3)
        started.append(sip)
        return sip

    yield start
    for sip in started:
        sip.stop()


@pytest.fixture(scope="session")
def renderer(tmp_path_factory: pytest.TempPathFactory) -> PromptRenderer:
    """Every fixed prompt rendered once for the run, as `burgernet sounds render` does."""
    rendered = PromptRenderer(tmp_path_factory.mktemp("sounds"), use_gtts=False)
    rendered.render_fixed(load_catalogue())
    return rendered


@pytest.fixture(scope="module")
def sip_sessions(new_database_url: Callable[[], str]) -> Iterator[sessionmaker[Session]]:
    """A database of this module's own: call threads and the test commit for real."""
    engine = make_engine(new_database_url())
    ensure_schema(engine)
    factory = session_factory(engine, writer=True)
    with factory() as session, session.begin():
        load_reference(session, DEFAULT_DATA_DIR, MELDKAMER_CONFIG)
    yield factory
    engine.dispose()


