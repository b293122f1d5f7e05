"""The metrics module: labels that never hold a number, who may read /metrics, the port."""

from __future__ import annotations

import ipaddress
import socket
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.errors import ConfigError
from core.metrics import REDACTED, Metrics, ScrapeAccess, check_single_process, label_value, serve
from core.settings import Settings


@pytest.mark.parametrize(("value", "label"), [
    ("sms", "sms"),
    ("http_500", "http_500"),
    ("21211", "21211"),  # a Twilio error code: five digits
    ("/webhooks/twilio/status", "/webhooks/twilio/status"),
    ("+31612345678", REDACTED),
    ("0612345678", REDACTED),
    ("tel:+31 6 1234 5678", REDACTED),
    ("06-1234-5678", REDACTED),
    ("12 34 56", REDACTED),
    ("1-2-3-4-5", "1-2-3-4-5"),
    ("a\"b\nc{d}", "a_b_c_d_"),
    ("", "none"),
    ("x" * 100, "x" * 64),
])
def test_a_label_holds_no_number_and_no_syntax(value: str, label: str) -> None:
    assert label_value(value) == label


LOOPBACK = ScrapeAccess((ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")),
                        token="a-long-enough-secret-token")


@pytest.mark.parametrize(("peer", "authorization", "forwarded", "allowed"), [
    ("127.0.0.1", None, False, True),
    ("::1", None, False, True),
    ("::ffff:127.0.0.1", None, False, True),
    ("203.0.113.5", None, False, False),
    ("127.0.0.1", None, True, False),  # a reverse proxy on this host: token only
    ("203.0.113.5", "Bearer a-long-enough-secret-token", True, True),
    ("203.0.113.5", "Bearer a-long-enough-secret-toke", False, False),
    ("203.0.113.5", "a-long-enough-secret-token", False, False),
    (None, None, False, False),
    ("not an address", None, False, False),
])
def test_only_the_networks_or_the_token_may_scrape(peer: str | None, authorization: str | None,
                                                   forwarded: bool, allowed: bool) -> None:
    assert LOOPBACK.allows(peer, authorization, forwarded) is allowed


def test_without_a_token_no_header_opens_it() -> None:
    closed = ScrapeAccess((), token="")
    assert not closed.allows("127.0.0.1", "Bearer ", False)
    assert not closed.allows("127.0.0.1", "Bearer", False)


def _get(url: str, token: str | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"}
                                     if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, reply.headers["Content-Type"], reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def test_a_process_serves_its_own_metrics_on_its_port() -> None:
    metrics = Metrics()
    metrics.delivery("sms", "alert", "sent", 3)
    metrics.registration("free_number", lambda: True)
    server = serve(lambda: [metrics.registry], "127.0.0.1", 0, LOOPBACK)
    try:
        status, kind, body = _get(f"http://127.0.0.1:{server.port}/metrics")
        assert status == 200 and kind.startswith("text/plain; version=0.0.4")
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families(body) for s in family.samples}
        assert samples[("burgernet_deliveries_total", (("channel", "sms"), ("purpose", "alert"),
                                                        ("status", "sent")))] == 3
        assert samples[("burgernet_sip_registered", (("role", "free_number"),))] == 1
        assert _get(f"http://127.0.0.1:{server.port}/other")[0] == 404
    finally:
        server.close()


def test_the_port_refuses_who_may_not_scrape() -> None:
    server = serve(lambda: [Metrics().registry], "127.0.0.1", 0,
                   ScrapeAccess((), token="a-long-enough-secret-token"))
    try:
        assert _get(f"http://127.0.0.1:{server.port}/metrics")[:2] == (403, "text/plain")
        assert _get(f"http://127.0.0.1:{server.port}/metrics",
                    token="a-long-enough-secret-token")[0] == 200
    finally:
        server.close()


def test_a_taken_metrics_port_is_a_clear_error_at_start() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"METRICS_PORT={port}: cannot listen on "
                                              rf"127.0.0.1:{port}"):
            serve(lambda: [], "127.0.0.1", port, LOOPBACK)


def test_a_metrics_address_this_host_does_not_have_is_a_clear_error_at_start() -> None:
    # 192.0.2.0/24 is TEST-NET-1 (RFC 5737): assigned to no host
    with pytest.raises(ConfigError, match=r"METRICS_PORT=9464: cannot listen on "
                                          r"192.0.2.1:9464 for /metrics \("):
        serve(lambda: [], "192.0.2.1", 9464, LOOPBACK)


def test_a_process_with_its_own_port_writes_no_multiprocess_files() -> None:
    check_single_process()  # this test process: prometheus_client's plain values


@pytest.mark.parametrize(("variables", "message"), [
    ({"METRICS_PORT": "70000"}, "METRICS_PORT='70000' is outside 1-65535"),
    ({"METRICS_PORT": "nine"}, "METRICS_PORT='nine' is not a port number"),
    ({"METRICS_NETWORKS": "127.0.0.1/8"}, "METRICS_NETWORKS: '127.0.0.1/8' is not a network"),
    ({"METRICS_NETWORKS": "localhost"}, "METRICS_NETWORKS: 'localhost' is not a network"),
    ({"METRICS_TOKEN": "short"}, "METRICS_TOKEN must be at least 16"),
    ({"METRICS_TOKEN": "sixteen chars with space"}, "METRICS_TOKEN must be at least 16"),
])
def test_wrong_metrics_settings_are_refused_at_start(tmp_path, variables: dict[str, str],
                                                     message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({"BURGERNET_HOME": str(tmp_path), "SECRET_KEY": "k", **variables})


def test_the_metrics_settings_and_their_defaults(tmp_path) -> None:
    default = Settings.from_env({"BURGERNET_HOME": str(tmp_path), "SECRET_KEY": "k"})
    assert (default.metrics_port, default.metrics_host) == (0, "127.0.0.1")
    assert default.metrics_dir == tmp_path / "var" / "metrics"
    assert default.metrics_networks == ("127.0.0.0/8", "::1/128")
    chosen = Settings.from_env({"BURGERNET_HOME": str(tmp_path), "SECRET_KEY": "k",
                                "METRICS_PORT": "9101", "METRICS_DIR": "m",
                                "METRICS_NETWORKS": "10.0.0.0/8, ", "METRICS_TOKEN": "t" * 16})
    assert (chosen.metrics_port, chosen.metrics_dir) == (9101, tmp_path / "m")
    assert chosen.metrics_networks == ("10.0.0.0/8",) and chosen.metrics_token == "t" * 16
    assert "t" * 16 not in repr(chosen)
