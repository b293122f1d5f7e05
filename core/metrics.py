"""Prometheus metrics: every metric the product exports, made in one place.

`Metrics()` makes them on a registry of its own; each process builds one when its entry point
builds the Runtime (`outbound.runtime.build_runtime`), never on import. Label values come from
fixed vocabularies (channels, statuses, our error codes, routing reasons, meldkamer codes,
route templates) and all pass `label_value`, which never lets a phone number through.

How each process is scraped (the README's "Operations: metrics"):
- `burgernet web` runs several gunicorn processes: it empties METRICS_DIR and puts every
  process's values there (`use_directory`, prometheus_client's multiprocess mode); `/metrics`
  in any of them reads them all (`web.metrics`), with the state of queues and outbox read at
  scrape time (`outbound.metrics`).
- `burgernet worker` and `burgernet sip` serve their own values on their own port
  (METRICS_PORT, `serve`), so Prometheus's `up` says at once that one of them is gone.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, ThreadingWSGIServer
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.errors import ConfigError
from core.settings import Settings

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

#: Seconds; from a fast provider answer to a batch that waits for its slots at a low rate.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
WAIT_BUCKETS = (0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

_UNSAFE = re.compile(r"[^A-Za-z0-9_.:/-]")
#: Six digits may be part of a phone number, however spaced: Twilio's error codes have five.
MOST_DIGITS = 5
REDACTED = "redacted"


def label_value(value: object, limit: int = 64) -> str:
    """VALUE as a label: letters, digits and `_.:/-` only, at most LIMIT characters, and
    `redacted` for anything that holds six digits or more (a phone number however written, an
    id): labels are kept for months and read by everyone with a dashboard."""
    text = str(value)
    if sum(character.isdigit() for character in text) > MOST_DIGITS:
        return REDACTED
    text = _UNSAFE.sub("_", text)[:limit]
    return text or "none"


class Metrics:
    """The metric objects of one process, on REGISTRY (a new one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        reg = self.registry
        self.deliveries = Counter(
            "burgernet_deliveries", "Deliveries that reached a status: sent, delivered, "
            "answered, voicemail, failed, skipped; queued is a delivery put back for another "
            "try", ["channel", "purpose", "status"], registry=reg)
        self.provider_requests = Counter(
            "burgernet_provider_requests", "Requests to a provider by outcome (ok, retry: a "
            "retryable error, failed: a permanent one) and our error code",
            ["provider", "channel", "outcome", "error_code"], registry=reg)
        self.provider_seconds = Histogram(
            "burgernet_provider_request_seconds", "Time a provider took to answer a send",
            ["provider", "channel"], buckets=LATENCY_BUCKETS, registry=reg)
        self.rate_limit_wait = Histogram(
            "burgernet_rate_limit_wait_seconds", "Time a message waited for its slot of the "
            "sender's shared rate and its sliding-second cap", ["channel"],
            buckets=WAIT_BUCKETS, registry=reg)
        self.inbound_calls = Counter(
            "burgernet_inbound_calls", "Calls on the free number put through, by the reason of "
            "their route and the meldkamer dialled first", ["transport", "reason", "meldkamer"],
            registry=reg)
        self.webhook_seconds = Histogram(
            "burgernet_webhook_seconds", "Time to answer a provider webhook, by route "
            "template and status class", ["route", "status"], buckets=LATENCY_BUCKETS,
            registry=reg)
        self.calls_in_progress = Gauge(
            "burgernet_calls_in_progress", "SIP calls this process is carrying",
            ["direction"], multiprocess_mode="livesum", registry=reg)
        self.prompt_cache = Counter(
            "burgernet_prompt_cache_lookups", "Rendered prompts looked up in the cache: hit, "
            "or miss (synthesised now)", ["result"], registry=reg)
        self.verification_sms = Counter(
            "burgernet_verification_sms", "Verification code SMS jobs by outcome (sent, "
            "retry, failed, expired)", ["outcome"], registry=reg)
        self.code_refusals = Counter(
            "burgernet_verification_code_refusals", "Code requests refused, by reason (wait, "
            "today, client, budget)", ["reason"], registry=reg)
        self.breaker_open = Gauge(
            "burgernet_provider_breaker_open", "1 while this process holds sends to the "
            "provider back: it refused service (5xx, 429, unreachable) several times in a row",
            ["provider", "channel"], multiprocess_mode="livemax", registry=reg)
        self.breaker_trips = Counter(
            "burgernet_provider_breaker_trips", "Times a process's breaker for a provider "
            "opened (or stayed open after a failed probe)", ["provider", "channel"],
            registry=reg)
        self.held_back = Counter(
            "burgernet_sends_held_back", "Messages put back unsent (no attempt counted) "
            "because the provider's breaker was open", ["provider", "channel"], registry=reg)
        self._registrations = _Registrations()
        reg.register(self._registrations)

    def delivery(self, channel: object, purpose: object, status: object, count: int = 1) -> None:
        """COUNT deliveries of CHANNEL and PURPOSE reached STATUS."""
        if count:
            self.deliveries.labels(label_value(channel), label_value(purpose),
                                   label_value(status)).inc(count)

    def provider_request(self, provider: str, channel: object, seconds: float,
                         error: Any = None) -> None:
        """A send to PROVIDER took SECONDS; ERROR is its ProviderError (duck-typed: core
        does not know the providers), or None when it was taken."""
        name, lane = label_value(provider), label_value(channel)
        if error is None:
            outcome, code = "ok", ""
        else:
            outcome = "retry" if error.retryable else "failed"
            code = label_value(error.code)
        self.provider_requests.labels(name, lane, outcome, code).inc()
        self.provider_seconds.labels(name, lane).observe(seconds)

    def breaker_opened(self, provider: str, channel: object, seconds: float) -> None:
        """PROVIDER's breaker for CHANNEL opened for SECONDS."""
        labels = (label_value(provider), label_value(channel))
        self.breaker_open.labels(*labels).set(1)
        self.breaker_trips.labels(*labels).inc()

    def breaker_closed(self, provider: str, channel: object) -> None:
        self.breaker_open.labels(label_value(provider), label_value(channel)).set(0)

    def sends_held_back(self, provider: str, channel: object, count: int = 1) -> None:
        self.held_back.labels(label_value(provider), label_value(channel)).inc(count)

    def waited(self, channel: object, seconds: float) -> None:
        self.rate_limit_wait.labels(label_value(channel)).observe(max(0.0, seconds))

    def inbound_call(self, transport: str, reason: str, meldkamer: str | None) -> None:
        self.inbound_calls.labels(label_value(transport), label_value(reason),
                                  label_value(meldkamer or "none")).inc()

    def webhook(self, route: str, status: int, seconds: float) -> None:
        self.webhook_seconds.labels(label_value(route), f"{status // 100}xx").observe(seconds)

    def call(self, direction: str) -> Any:
        """A context manager: one more SIP call in progress while it lasts."""
        return self.calls_in_progress.labels(label_value(direction)).track_inprogress()

    def prompt(self, hit: bool) -> None:
        self.prompt_cache.labels("hit" if hit else "miss").inc()

    def verification(self, outcome: str) -> None:
        self.verification_sms.labels(label_value(outcome)).inc()

    def refused(self, reason: str) -> None:
        self.code_refusals.labels(label_value(reason.removesuffix("-first"))).inc()

    def registration(self, role: str, registered: Callable[[], bool]) -> None:
        """A SIP endpoint of ROLE (free_number, voice_out): REGISTERED is asked at each
        scrape. By role, not by SIP user: a SIP user may well be a number."""
        self._registrations.endpoints[label_value(role)] = registered


class _Registrations(Collector):
    """burgernet_sip_registered, read from the endpoints when scraped."""

    def __init__(self) -> None:
        self.endpoints: dict[str, Callable[[], bool]] = {}

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("burgernet_sip_registered", "1 while the SIP endpoint of "
                                   "this role is registered at SIP_PROXY", labels=["role"])
        for role, registered in sorted(self.endpoints.items()):
            family.add_metric([role], 1.0 if registered() else 0.0)
        yield family


# --- several processes, one directory --------------------------------------------------

_directory: Path | None = None
# prometheus_client's multiprocess functions carry no annotations: typed here, once.
_value_class = cast(Callable[[], Any], values.MultiProcessValue)
_mark_dead = cast(Callable[[int, str], None], multiprocess.mark_process_dead)
_collector = cast(Callable[..., Collector], multiprocess.MultiProcessCollector)


def use_directory(path: Path) -> None:
    """Keep the values of this process and of every process it forks in PATH, emptied now
    (prometheus_client's multiprocess mode). Call before any `Metrics` is made: the gunicorn
    master, before it forks its workers.

    prometheus_client chooses its value class from PROMETHEUS_MULTIPROC_DIR when it is first
    imported; here the entry point chooses, after import, as prometheus_client's own tests
    do. The variable is set as well: its writers and collector read the directory from it."""
    global _directory
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    values.ValueClass = _value_class()
    _directory = path


def check_single_process() -> None:
    """ConfigError when this process keeps its values in a directory it did not choose: with
    PROMETHEUS_MULTIPROC_DIR in its environment, a worker would write into files that the web
    app then counts a second time."""
    if _directory is None and getattr(values.ValueClass, "_multiprocess", False):
        raise ConfigError("PROMETHEUS_MULTIPROC_DIR is set for a process with its own metrics "
                          "port: unset it (`burgernet web` sets its own from METRICS_DIR)")


def multiprocess_directory() -> Path | None:
    """The directory `use_directory` chose for this process, if any."""
    return _directory


def process_gone(pid: int, path: Path) -> None:
    """A process of PATH ended: its live gauges (calls in progress) stop counting."""
    _mark_dead(pid, str(path))


def directory_collector(path: Path) -> Collector:
    """Every process's values in PATH, summed as prometheus_client's multiprocess mode does."""
    return _collector(None, path=str(path))


# --- exposition and who may read it ----------------------------------------------------

class _Together(Collector):
    def __init__(self, sources: Iterable[Collector]) -> None:
        self.sources = list(sources)

    def collect(self) -> Iterator[Metric]:
        for source in self.sources:
            yield from source.collect()


def exposition(sources: Iterable[Collector]) -> bytes:
    """The Prometheus text format (0.0.4) of everything SOURCES collect."""
    return generate_latest(_Together(sources))


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ScrapeAccess:
    """Who may read /metrics: a direct connection from NETWORKS, or anyone who sends TOKEN
    as a bearer token. A request that came through a proxy (X-Forwarded-For or Forwarded)
    needs the token: a reverse proxy on the same host would otherwise make every visitor
    look like loopback."""

    networks: tuple[Network, ...]
    token: str = ""

    @classmethod
    def of(cls, settings: Settings) -> ScrapeAccess:
        """METRICS_NETWORKS and METRICS_TOKEN."""
        return cls(tuple(ipaddress.ip_network(n) for n in settings.metrics_networks),
                   settings.metrics_token)

    def allows(self, peer: str | None, authorization: str | None, forwarded: bool) -> bool:
        if self.token and authorization and hmac.compare_digest(
                authorization.encode(), f"Bearer {self.token}".encode()):
            return True
        if forwarded or not peer:
            return False
        try:
            address = ipaddress.ip_address(peer.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)


def forwarded(headers: Callable[[str], str | None]) -> bool:
    """Whether a request says it came through a proxy."""
    return bool(headers("X-Forwarded-For") or headers("Forwarded"))


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        """Prometheus asks every few seconds: not worth a line each time."""


@dataclass
class MetricsServer:
    """A running metrics port; `close` stops it."""

    host: str
    port: int
    _server: ThreadingWSGIServer
    _thread: threading.Thread

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve(sources: Callable[[], Iterable[Collector]], host: str, port: int,
          access: ScrapeAccess, *, name: str = "METRICS_PORT") -> MetricsServer:
    """Serve /metrics on HOST:PORT in a thread of this process; ConfigError (naming NAME)
    when that address cannot be listened on."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ.get("PATH_INFO") not in ("/metrics", "/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        allowed = access.allows(environ.get("REMOTE_ADDR"), environ.get("HTTP_AUTHORIZATION"),
                                forwarded(lambda h: environ.get(
                                    "HTTP_" + h.upper().replace("-", "_"))))
        if not allowed:
            start_response("403 Forbidden", [("Content-Type", "text/plain")])
            return [b"forbidden\n"]
        body = exposition(sources())
        start_response("200 OK", [("Content-Type", CONTENT_TYPE),
                                  ("Content-Length", str(len(body)))])
        return [body]

    class Server(ThreadingWSGIServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        daemon_threads = True

    try:
        server = make_server(host, port, app, server_class=Server, handler_class=_Quiet)
    except OSError as exc:
        raise ConfigError(f"{name}={port}: cannot listen on {host}:{port} for /metrics "
                          f"({exc.strerror or exc})") from None
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    return MetricsServer(host, server.server_port, server, thread)
