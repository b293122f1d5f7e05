"""Real SIP peers on loopback: Kamailio (registrar + proxy) and SIPp, on free ports.

Each test gets its own Kamailio (listen port and trunk port picked free, pid and runtime files
under tmp_path), so runs can go in parallel. The SIPp "trunk" of a test listens on
`kamailio.trunk_port`; numbers starting with 0 or + go there, other users to their
registration. Missing binaries fail the tests with the package to install.
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from core.db import make_engine, session_factory
from core.reference import load_reference
from core.schema import ensure_schema
from core.settings import DEFAULT_DATA_DIR
from fakes import sip as peers
from fakes.sip import HOST, PeerError, find_binary, free_udp_port, missing_binary, stop_process
from ivr.prompts import load_catalogue
from ivr.sip import SipCall, SipEndpoint
from ivr.tts import PromptRenderer
from tests.conftest import MELDKAMER_CONFIG

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
    require("kamailio", "kamailio")
    require("sipp", "sip-tester")
    workdir = tmp_path / "kamailio"
    workdir.mkdir()
    server = Kamailio(port=free_udp_port(), trunk_port=free_udp_port(), workdir=workdir)
    config = ((DATA / "kamailio.cfg").read_text()
              .replace("@PORT@", str(server.port))
              .replace("@TRUNK_PORT@", str(server.trunk_port))
              .replace("@ROUTES@", "\n".join(
                  f'    if ($rU == "{number}") {{ $du = "sip:{HOST}:{port}"; '
                  't_relay(); exit; }' for number, port in kamailio_routes.items())))
    try:
        with peers.kamailio(config, workdir, server.port):
            yield server
    except PeerError as error:
        pytest.fail(str(error), pytrace=False)


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
    require("sipp", "sip-tester")
    runs: list[SippRun] = []

    def start(scenario: str, *, port: int | None = None, service: str | None = None,
              uac: bool | None = None, timeout: float = 20.0) -> SippRun:
        is_uac = service is not None if uac is None else uac
        port = port or free_udp_port()
        media_port = free_udp_port(span=4)
        workdir = tmp_path / f"sipp-{len(runs)}-{Path(scenario).stem}"
        workdir.mkdir()
        arguments = ["-m", "1", "-timeout", f"{timeout:g}s", "-timeout_error",
                     "-trace_msg", "-message_file", str(workdir / "messages.log"),
                     *(["-s", service] if service is not None else [])]
        process = peers.sipp(DATA / scenario, workdir, port=port, media_port=media_port,
                             arguments=arguments, proxy_port=kamailio.port if is_uac else None)
        run = SippRun(scenario, port, media_port, workdir, process)
        runs.append(run)
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


