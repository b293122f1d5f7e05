"""The one composition root: every client of a process, built once from settings.

`build_runtime(settings)` alone turns settings into clients: the database engine and its
sessions, Redis, the shared throttles, a provider per channel, text-to-speech, the SIP flow
runners and the clock. Each entry point calls it once and passes the `Runtime` down:
`web.create_app`, the worker (`outbound.worker`, which hands it to every job), the commands
that need more than the database (`outbound.cli.pass_runtime`, `burgernet sip` among them)
and the benchmarks. Building connects to nothing: the engine, Redis and the providers connect
when first used.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, TypeVar

import redis
from redis import Redis
from redis.sentinel import MasterNotFoundError, Sentinel
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.db import make_engine, session_factory
from core.egress import Egress
from core.errors import ConfigError
from core.metrics import Metrics
from core.models import Channel, Delivery
from core.reference import load_national_fallback
from core.schema import prepare_schema
from core.settings import Settings, load_vapid_key
from ivr.prompts import Catalogue, load_catalogue
from ivr.sip import SipEndpoint
from ivr.sip_runner import SipFlowRunner
from ivr.tts import PromptRenderer, sounds_dir
from outbound.breaker import Breakers
from outbound.callbacks import end_call
from outbound.progress import channel_rate
from outbound.providers import Provider
from outbound.providers.console import OUTBOX, ConsoleProvider
from outbound.providers.sip import SipVoiceProvider
from outbound.providers.smtp import SmtpProvider
from outbound.providers.twilio_rest import TwilioRestProvider
from outbound.providers.webpush import WebPushProvider, database_report
from outbound.queues import schedule
from outbound.templates import message_text
from outbound.throttle import CallSlots, SendWindow, Throttle, call_slots, voice_trunk

T = TypeVar("T")


def utc_now() -> datetime:
    """The runtime's default clock."""
    return datetime.now(UTC)


@dataclass
class Runtime:
    """Every client of a process; tests build one around their own engine, sessions and Redis."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    #: None where REDIS_URL is not set: the web app then works without it; what cannot
    #: (the worker, queueing commands) asks through `redis_for`.
    redis: Redis | None = None
    #: Sessions for what writes: on SQLite they take the write lock when they begin, so
    #: concurrent writers wait their turn instead of failing with "database is locked".
    writer_sessions: sessionmaker[Session] | None = None
    #: Per channel, a factory: providers hold HTTP sessions bound to one event loop, so each
    #: batch makes its own inside its loop and closes them after (unless they `keep_open`).
    providers: dict[Channel, Callable[[], Provider]] = field(default_factory=dict)
    clock: Callable[[], datetime] = utc_now
    #: The process's metric objects (`core.metrics`), on a registry of its own.
    metrics: Metrics = field(default_factory=Metrics)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False, repr=False)
    _kept: dict[Channel, Provider] = field(default_factory=dict, init=False, repr=False)

    # --- database and Redis ------------------------------------------------------------

    @property
    def writer(self) -> sessionmaker[Session]:
        """Sessions for code that writes (the worker's jobs, webhooks, SIP calls)."""
        return self.writer_sessions or self.sessions

    def ready_engine(self) -> Engine:
        """The engine, with the schema upgraded (or checked, when AUTO_MIGRATE=0)."""
        prepare_schema(self.engine, upgrade=self.settings.auto_migrate)
        return self.engine

    def redis_for(self, purpose: str) -> Redis:
        """Redis, for PURPOSE that cannot go on without it; ConfigError says so when unset."""
        if self.redis is None:
            raise ConfigError(f"REDIS_URL is not set (nor REDIS_SENTINELS): {purpose} needs "
                              "the Redis that `burgernet run` (see var/redis.url) or your "
                              "deployment provides")
        return self.redis

    def connect_redis(self, purpose: str) -> Redis:
        """`redis_for`, checked now: ConfigError when Redis cannot be reached (or, through
        Sentinel, when no sentinel answers or none knows the primary)."""
        connection = self.redis_for(purpose)
        settings = self.settings
        try:
            connection.ping()
        except MasterNotFoundError:
            raise ConfigError(
                "REDIS_SENTINELS: no sentinel names a primary for REDIS_SENTINEL_MASTER="
                f"{settings.redis_sentinel_master!r}: "
                f"{'; '.join(_sentinel_answers(settings))}") from None
        except redis.AuthenticationError as exc:
            given = "REDIS_PASSWORD" if settings.redis_sentinels else "the password in REDIS_URL"
            raise ConfigError(f"Redis refused {given} (missing or wrong): {exc}") from None
        except redis.RedisError as exc:
            where = "the primary that REDIS_SENTINELS named" if settings.redis_sentinels \
                else "REDIS_URL"
            raise ConfigError(f"cannot reach Redis at {where}: {exc}") from None
        return connection

    # --- rate limits ---------------------------------------------------------------------

    @cached_property
    def throttle(self) -> Throttle:
        return Throttle(self.redis_for("the rate limits"))

    @cached_property
    def send_window(self) -> SendWindow:
        return SendWindow(self.redis_for("the rate limits"))

    @cached_property
    def breakers(self) -> Breakers:
        """This process's circuit breakers, one per provider and channel."""
        return Breakers(self.metrics)

    @property
    def call_slots(self) -> CallSlots:
        """The shared cap on calls in progress on the voice trunk."""
        return call_slots(self.redis_for("the cap on calls"), self.settings)

    def rate(self, channel: Channel) -> float:
        return channel_rate(self.settings, channel)

    def sender_key(self, channel: Channel) -> str:
        """Whose rate a message counts against: the provider and its sending number."""
        settings = self.settings
        if channel == Channel.VOICE:
            return voice_trunk(settings)
        if channel == Channel.EMAIL:
            return f"{settings.email_provider}:email:{settings.smtp_from}"
        if channel == Channel.PUSH:
            return f"{settings.push_provider}:push"
        return f"{settings.sms_provider}:sms:{settings.twilio_from or 'console'}"

    # --- providers -----------------------------------------------------------------------

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a batch on this process's one event loop (jobs run on one thread).

        Providers that say `keep_open` are made once and reused by every batch on this loop,
        so their HTTP connections stay open from one batch to the next.
        """
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coroutine)

    def provider(self, channel: Channel) -> Provider:
        """A provider for CHANNEL: the kept one, or a new one to `release` after use."""
        kept = self._kept.get(channel)
        if kept is not None:
            return kept
        provider = self.providers[channel]()
        if provider.keep_open:
            self._kept[channel] = provider
        return provider

    @staticmethod
    async def release(provider: Provider) -> None:
        """Done with PROVIDER for this batch: closed, unless it is kept open."""
        if not provider.keep_open:
            await provider.close()

    def close(self) -> None:
        """Close the kept providers and the loop (a process's exit, a test's end)."""
        if self._loop is None or self._loop.is_closed():
            return
        kept = list({id(p): p for p in self._kept.values()}.values())
        self._kept.clear()

        async def close_all() -> None:
            for provider in kept:
                await provider.close()

        self._loop.run_until_complete(close_all())
        self._loop.close()

    @property
    def status_callback(self) -> str:
        return f"{self.settings.public_url}/webhooks/twilio/status"

    # --- voice: prompts, flows, SIP --------------------------------------------------------

    @cached_property
    def catalogue(self) -> Catalogue:
        return load_catalogue()

    @cached_property
    def national_fallback(self) -> str:
        """The meldkamer that takes a call nobody else could be found for (configuration)."""
        return load_national_fallback(self.settings.meldkamer_config)

    @cached_property
    def renderer(self) -> PromptRenderer:
        """Renders prompts to audio once, into var/sounds (SIP plays nothing else)."""
        return PromptRenderer(sounds_dir(self.settings), use_gtts=self.settings.tts == "gtts",
                              metrics=self.metrics)

    @property
    def prompt_renderer(self) -> PromptRenderer | None:
        """The renderer for TwiML's <Play>; None where TTS=off (Twilio then reads <Say>)."""
        return None if self.settings.tts == "off" else self.renderer

    def message_text(self, delivery: Delivery) -> str:
        """What a voice message reads out: the delivery's text in its language."""
        return message_text(delivery.action, delivery.purpose, delivery.language,
                            self.settings.free_number)

    def sip_runner(self, username: str, *, free_number: bool = False) -> SipFlowRunner:
        """A flow runner with its own pyVoIP endpoint, registered at SIP_PROXY as USERNAME
        once started: the free number's answers every call; the voice messages' only dials."""
        settings = self.settings
        if settings.sip_proxy is None:
            who = "`burgernet sip`" if free_number else "VOICE_PROVIDER=sip"
            raise ConfigError(f"SIP_PROXY is not set: {who} registers at that registrar/proxy "
                              "(host:port, e.g. Kamailio at 127.0.0.1:5060)")
        runner = SipFlowRunner(self.writer, self.catalogue, self.renderer,
                               national_fallback=self.national_fallback,
                               message_text=self.message_text,
                               dial_timeout=settings.dial_timeout, clock=self.clock,
                               metrics=self.metrics)
        host, port = settings.sip_proxy
        endpoint = runner.endpoint = SipEndpoint(
            proxy_host=host, proxy_port=port, username=username,
            password=settings.sip_password, local_ip=settings.sip_local_ip,
            sip_port=settings.sip_port if free_number else 0, rtp_ports=settings.sip_rtp_ports,
            on_call=runner.free_number_call if free_number else None)
        self.metrics.registration("free_number" if free_number else "voice_out",
                                  lambda: endpoint.registered)
        return runner

    def end_sip_call(self, delivery_id: int, call_id: str, status: str) -> None:
        """The SIP provider's `on_final`: the one end of a call, committed, and what it
        queues again queued."""
        with self.writer() as session:
            again = end_call(session, self.redis, self.settings, call_id, status, self.clock(),
                             delivery_id=delivery_id, metrics=self.metrics)
            session.commit()
            if self.redis is not None:
                schedule(self.redis, session, again)


def build_runtime(settings: Settings) -> Runtime:
    """Every client, from SETTINGS (once per process); nothing connects yet."""
    engine = make_engine(settings.database_url)
    runtime = Runtime(settings, engine, session_factory(engine), redis_client(settings),
                      session_factory(engine, writer=True))
    console = ConsoleProvider(settings.var_dir / OUTBOX)

    def twilio() -> Provider:
        return TwilioRestProvider(
            settings.twilio_account_sid, settings.twilio_auth_token, settings.twilio_from,
            base_url=settings.twilio_base_url,
            voice_url=f"{settings.public_url}/webhooks/twilio/voice")

    def smtp() -> Provider:
        return SmtpProvider(settings.smtp_host, settings.smtp_port, settings.smtp_from,
                            username=settings.smtp_username, password=settings.smtp_password,
                            starttls=settings.smtp_starttls)

    choices: dict[Channel, dict[str, Callable[[], Provider]]] = {
        Channel.SMS: {"console": lambda: console, "twilio": twilio},
        Channel.VOICE: {"console": lambda: console, "twilio": twilio},
        Channel.EMAIL: {"console": lambda: console, "smtp": smtp},
        Channel.PUSH: {"console": lambda: console}}
    if settings.push_provider == "webpush":
        choices[Channel.PUSH]["webpush"] = _webpush(runtime)
    if settings.voice_provider == "sip":
        choices[Channel.VOICE]["sip"] = _sip(runtime)
    for channel, choice in ((Channel.SMS, settings.sms_provider),
                            (Channel.VOICE, settings.voice_provider),
                            (Channel.EMAIL, settings.email_provider),
                            (Channel.PUSH, settings.push_provider)):
        runtime.providers[channel] = choices[channel][choice]
    return runtime


#: Seconds a sentinel may take to connect and answer before the next one is asked.
SENTINEL_TIMEOUT = 1.0
#: Seconds to connect to Redis (the primary) before giving up.
CONNECT_TIMEOUT = 2.0


def redis_client(settings: Settings) -> Redis | None:
    """The one Redis client of a process: REDIS_URL's, or the primary that REDIS_SENTINELS
    know as REDIS_SENTINEL_MASTER; None when neither is set. Through Sentinel, every new
    connection asks the sentinels where the primary is, so after a failover the client
    follows the new primary (a demoted one's READONLY answers end its connections)."""
    if settings.redis_sentinels:
        sentinel = Sentinel(settings.redis_sentinels,
                            sentinel_kwargs={"socket_timeout": SENTINEL_TIMEOUT,
                                             "socket_connect_timeout": SENTINEL_TIMEOUT},
                            password=settings.redis_password or None,
                            socket_connect_timeout=CONNECT_TIMEOUT,
                            socket_keepalive=True, socket_keepalive_options=keepalive())
        client: Redis = sentinel.master_for(settings.redis_sentinel_master)
        return client
    if not settings.redis_url:
        return None
    return redis.Redis.from_url(settings.redis_url, socket_connect_timeout=CONNECT_TIMEOUT,
                                socket_keepalive=True, socket_keepalive_options=keepalive())


def keepalive() -> dict[int, int]:
    """TCP options that give up on a Redis whose host vanished (no reset comes) after about
    15 s: keepalive probes while a worker's BLPOP waits minutes for an answer (RQ sets its
    socket timeout), and a limit on unanswered data for a command sent into the void (a
    /readyz or `burgernet status` would otherwise hang for the kernel's many minutes)."""
    options = {"TCP_KEEPIDLE": 5, "TCP_KEEPINTVL": 2, "TCP_KEEPCNT": 5,
               "TCP_USER_TIMEOUT": 15_000}
    return {getattr(socket, name): value for name, value in options.items()
            if hasattr(socket, name)}


def _sentinel_answers(settings: Settings) -> list[str]:
    """What each sentinel of SETTINGS says about the primary, for a person to read."""
    answers = []
    name = settings.redis_sentinel_master
    for host, port in settings.redis_sentinels:
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        client = Redis(host, port, socket_timeout=SENTINEL_TIMEOUT,
                       socket_connect_timeout=SENTINEL_TIMEOUT)
        try:
            masters = client.sentinel_masters()  # {name: state} (RESP2, as here)
            state = masters.get(name) if isinstance(masters, dict) else None
        except redis.RedisError as exc:
            answers.append(f"{where} does not answer ({exc})")
            continue
        finally:
            client.close()
        if state is None:
            answers.append(f"{where} monitors no primary named {name!r}")
        else:
            answers.append(f"{where} finds {name!r} down")
    return answers


def _webpush(runtime: Runtime) -> Callable[[], Provider]:
    settings = runtime.settings
    assert settings.vapid_private_key is not None
    vapid_key = load_vapid_key(settings.vapid_private_key)
    report = database_report(runtime.writer)
    egress = Egress(settings.push_service_hosts, settings.test_only_allow_loopback)
    return lambda: WebPushProvider(vapid_key, settings.vapid_subject,
                                   public_url=settings.public_url, report=report,
                                   egress=egress)


def _sip(runtime: Runtime) -> Callable[[], Provider]:
    """One endpoint per process, registered on first use and kept for its life."""
    provider: list[Provider] = []
    lock = threading.Lock()

    def get() -> Provider:
        with lock:
            if not provider:
                runner = runtime.sip_runner(runtime.settings.sip_out_username)
                assert runner.endpoint is not None
                runner.endpoint.start()
                provider.append(SipVoiceProvider(runner.endpoint, runner,
                                                 on_final=runtime.end_sip_call,
                                                 ring_timeout=runtime.settings.dial_timeout))
        return provider[0]

    return get
