"""A real SIP proxy as LoST client: Kamailio's own lost module (not our code) turns the PIDF-LO
of an INVITE into a <findService>, sends it to /lost of the app served on loopback, and routes
the call to the mapping's URI (here: answers 302 with it as Contact)."""

from __future__ import annotations

import dataclasses
import random
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine
from werkzeug.serving import make_server

from core.db import session_factory
from core.settings import Settings
from fakes.sip import HOST, PeerError, free_udp_port, kamailio
from outbound.runtime import Runtime
from tests.routing.conftest import DATA as ROUTING_DATA
from tests.sip.conftest import DATA, require
from web import create_app

MULTIPART = "multipart/mixed; boundary=boundary1"


@pytest.fixture
def credentials() -> str:
    """LOST_CREDENTIALS of the app."""
    return ""


@pytest.fixture
def sent_credentials(credentials: str) -> str:
    """What Kamailio's connection URL carries (by default, the right ones)."""
    return credentials


@pytest.fixture
def lost_url(settings: Settings, engine: Engine, redis_client: redis.Redis,
             credentials: str, sent_credentials: str) -> Iterator[str]:
    """The app served on a free loopback port (LoST only reads the reference data, so it
    uses sessions of its own on the shared database)."""
    configured = dataclasses.replace(settings, lost_credentials=credentials)
    app = create_app(runtime=Runtime(configured, engine, session_factory(engine),
                                     redis_client))
    server = make_server(HOST, 0, app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        user = f"{sent_credentials}@" if sent_credentials else ""
        yield f"http://{user}{HOST}:{server.port}/lost"
    finally:
        server.shutdown()
        thread.join(5)


@pytest.fixture
def proxy(tmp_path: Path, lost_url: str) -> Iterator[tuple[int, Path]]:
    """Kamailio with the lost module, on a free port; yields the port and its log."""
    require("kamailio", "kamailio")
    if not any(path.exists() for path in Path("/usr/lib").glob("*/kamailio/modules/lost.so")):
        pytest.fail("Kamailio's lost module is not installed: apt-get install "
                    "kamailio-utils-modules", pytrace=False)
    port = free_udp_port()
    config = ((DATA / "kamailio-lost.cfg").read_text()
              .replace("@PORT@", str(port)).replace("@LOST_URL@", lost_url))
    try:
        with kamailio(config, tmp_path, port):
            yield port, tmp_path / "kamailio.log"
    except PeerError as error:
        pytest.fail(str(error), pytrace=False)


def invite(port: int, body: bytes, timeout: float = 10.0) -> dict[str, str]:
    """Send an INVITE carrying BODY (a multipart with a PIDF-LO) and return the final answer's
    status line and headers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        sock.settimeout(timeout)
        local = sock.getsockname()[1]
        tag = f"{random.getrandbits(40):x}"
        head = (f"INVITE sip:08000011@{HOST}:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {HOST}:{local};branch=z9hG4bK{tag}\r\n"
                f"From: <sip:+31690001234@{HOST}>;tag={tag}\r\n"
                f"To: <sip:08000011@{HOST}>\r\nCall-ID: lost-{tag}\r\nCSeq: 1 INVITE\r\n"
                f"Contact: <sip:caller@{HOST}:{local}>\r\nMax-Forwards: 70\r\n"
                "Geolocation: <cid:target123@burgernet.example>\r\nGeolocation-Routing: yes\r\n"
                f"Content-Type: {MULTIPART}\r\nContent-Length: {len(body)}\r\n\r\n")
        sock.sendto(head.encode() + body, (HOST, port))
        while True:
            lines = sock.recv(65535).decode().split("\r\n")
            if not lines[0].startswith("SIP/2.0 1"):
                break
    headers = {"status": lines[0]}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if value:
            headers[name.strip().lower()] = value.strip()
    return headers


def _body(lat: float, lon: float) -> bytes:
    text = (ROUTING_DATA / "multipart.txt").read_text()
    return text.replace("51.9225 4.4792", f"{lat} {lon}").replace("\n", "\r\n").encode()


@pytest.mark.parametrize(("lat", "lon", "uri"), [
    (51.9225, 4.4792, "sip:+31690000107@127.0.0.1:5060"),  # Rotterdam: RT
    (52.0907, 5.1214, "sip:+31690000103@127.0.0.1:5060"),  # Utrecht: MN
])
def test_kamailio_routes_an_invite_by_lost(proxy: tuple[int, Path], lat: float, lon: float,
                                           uri: str) -> None:
    port, log = proxy
    answer = invite(port, _body(lat, lon))
    assert answer["status"] == "SIP/2.0 302 Moved Temporarily", log.read_text()[-3000:]
    assert answer["contact"] == f"<{uri}>"


def test_kamailio_hears_a_lost_error_for_a_place_abroad(proxy: tuple[int, Path]) -> None:
    port, log = proxy
    answer = invite(port, _body(48.8566, 2.3522))
    assert answer["status"] == "SIP/2.0 404 No mapping"
    assert "err=<notFound>" in log.read_text()


@pytest.mark.parametrize("credentials", ["esrp:s3cret"])
def test_kamailio_sends_the_credentials_of_its_connection_url(proxy: tuple[int, Path]) -> None:
    """With LOST_CREDENTIALS set, http_client's user:password URL is HTTP Basic enough."""
    answer = invite(proxy[0], _body(52.0907, 5.1214))
    assert answer["contact"] == "<sip:+31690000103@127.0.0.1:5060>"


@pytest.mark.parametrize(("credentials", "sent_credentials"), [("esrp:s3cret", "esrp:wrong")])
def test_kamailio_with_wrong_credentials_gets_no_mapping(proxy: tuple[int, Path]) -> None:
    assert invite(proxy[0], _body(52.0907, 5.1214))["status"] == "SIP/2.0 404 No mapping"
