"""The worker's composition root: clients built once from settings, used by every job."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

import redis
from sqlalchemy.orm import Session, sessionmaker

from core.db import make_engine, session_factory
from core.errors import ConfigError
from core.models import Channel
from core.settings import Settings
from outbound.progress import channel_rate
from outbound.providers import Provider
from outbound.providers.console import OUTBOX, ConsoleProvider
from outbound.providers.smtp import SmtpProvider
from outbound.providers.twilio_rest import TwilioRestProvider
from outbound.throttle import CallSlots, SendWindow, Throttle

T = TypeVar("T")


@dataclass
class OutboundRuntime:
    """What jobs need: the database, Redis, the shared throttle and a provider per channel."""

    settings: Settings
    sessions: sessionmaker[Session]
    redis: redis.Redis
    throttle: Throttle
    #: Per channel, a factory: providers hold HTTP sessions bound to one event loop, so each
    #: batch makes its own inside its loop and closes them after.
    providers: dict[Channel, Callable[[], Provider]] = field(default_factory=dict)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False, repr=False)
    _kept: dict[Channel, Provider] = field(default_factory=dict, init=False, repr=False)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a batch on this process's one event loop (jobs run on one thread).

        Providers that say `keep_open` are made once and reused by every batch on this loop,
        so their HTTP connections stay open from one batch to the next.
        """
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coroutine)

    def provider(self, channel: Channel) -> Provider:
        """A provider for CHANNEL: the kept one, or a new one the batch closes after use."""
        kept = self._kept.get(channel)
        if kept is not None:
            return kept
        provider = self.providers[channel]()
        if getattr(provider, "keep_open", False):
            self._kept[channel] = provider
        return provider

    def close(self) -> None:
        """Close the kept providers and the loop (a worker's exit, a test's end)."""
        if self._loop is None or self._loop.is_closed():
            return
        kept = list({id(p): p for p in self._kept.values()}.values())
        self._kept.clear()

        async def close_all() -> None:
            for provider in kept:
                await provider.close()

        self._loop.run_until_complete(close_all())
        self._loop.close()

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

    @cached_property
    def send_window(self) -> SendWindow:
        return SendWindow(self.redis)

    @property
    def call_slots(self) -> CallSlots:
        return call_slots(self.redis, self.settings)

    @property
    def status_callback(self) -> str:
        return f"{self.settings.public_url}/webhooks/twilio/status"


def connect_redis(settings: Settings, purpose: str) -> redis.Redis:
    """The Redis of REDIS_URL, checked now; ConfigError says what needed it and why not."""
    if not settings.redis_url:
        raise ConfigError(f"REDIS_URL is not set: {purpose} needs the Redis that "
                          "`burgernet run` (see var/redis.url) or your deployment provides")
    connection = redis.Redis.from_url(settings.redis_url)
    try:
        connection.ping()
    except redis.RedisError as exc:
        raise ConfigError(f"cannot reach Redis at REDIS_URL: {exc}") from None
    return connection


def voice_trunk(settings: Settings) -> str:
    """The voice sender's name, for its rate and its concurrent-call cap."""
    return f"{settings.voice_provider}:voice:{settings.twilio_from or 'console'}"


def call_slots(connection: redis.Redis, settings: Settings) -> CallSlots:
    """The shared cap on calls in progress on the voice trunk (the web layer releases)."""
    return CallSlots(connection, voice_trunk(settings), settings.voice_max_concurrent)


def call_token(delivery_id: int) -> str:
    return f"delivery:{delivery_id}"


def build_runtime(settings: Settings) -> OutboundRuntime:
    """Every client, from settings (called once per worker process)."""
    connection = redis.Redis.from_url(settings.redis_url or "redis://127.0.0.1:6379/0")
    runtime = OutboundRuntime(settings, session_factory(make_engine(settings.database_url),
                                                        writer=True),
                              connection, Throttle(connection))
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

    choices = {Channel.SMS: {"console": lambda: console, "twilio": twilio},
               Channel.VOICE: {"console": lambda: console, "twilio": twilio},
               Channel.EMAIL: {"console": lambda: console, "smtp": smtp},
               Channel.PUSH: {"console": lambda: console}}
    if settings.push_provider == "webpush":
        choices[Channel.PUSH]["webpush"] = _webpush(settings, runtime)
    if settings.voice_provider == "sip":
        choices[Channel.VOICE]["sip"] = _sip(settings, runtime)
    for channel, choice in ((Channel.SMS, settings.sms_provider),
                            (Channel.VOICE, settings.voice_provider),
                            (Channel.EMAIL, settings.email_provider),
                            (Channel.PUSH, settings.push_provider)):
        runtime.providers[channel] = choices[channel][choice]
    return runtime


def _webpush(settings: Settings, runtime: OutboundRuntime) -> Callable[[], Provider]:
    from core.egress import Egress
    from core.settings import load_vapid_key
    from outbound.providers.webpush import WebPushProvider, database_report

    assert settings.vapid_private_key is not None
    vapid_key = load_vapid_key(settings.vapid_private_key)
    report = database_report(runtime.sessions)
    egress = Egress(settings.push_service_hosts, settings.test_only_allow_loopback)
    return lambda: WebPushProvider(vapid_key, settings.vapid_subject,
                                   public_url=settings.public_url, report=report,
                                   egress=egress)


def _sip(settings: Settings, runtime: OutboundRuntime) -> Callable[[], Provider]:
    """One endpoint per worker process, registered on first use and kept for its life."""
    from outbound.providers.sip import build_sip_provider

    provider: list[Provider] = []
    lock = threading.Lock()

    def get() -> Provider:
        with lock:
            if not provider:
                provider.append(build_sip_provider(settings, runtime))
        return provider[0]

    return get


_installed: OutboundRuntime | None = None


def install(runtime: OutboundRuntime) -> None:
    """Make RUNTIME the one jobs in this process use (the worker does this at start)."""
    global _installed
    _installed = runtime


def current() -> OutboundRuntime:
    if _installed is None:
        raise RuntimeError("no outbound runtime installed: jobs run inside `burgernet worker`")
    return _installed
