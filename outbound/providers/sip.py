"""Voice messages over SIP: a pyVoIP endpoint dials the participant through the proxy, and the
message flow (read the action, 1 = put through, 2 = again) runs on the answered call.

`send` returns once the call is answered (or raises for busy, no answer, refused), so the
batch's concurrency and the rate limit govern call set-up exactly as for Twilio. The
conversation goes on in a thread of its own; when it ends, `on_final` reports it, which is
where the webhook path would have had Twilio's final CallStatus.

There is no answering machine detection on SIP: neither pyVoIP nor the proxy tells a person
from a voicemail box, so every answered call gets the message with its menu and counts as
answered (`answered`), never as `voicemail`. A voicemail box hears the menu, nobody presses a
key, and the call ends after the usual repeats, as it always did.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from core.errors import ConfigError
from core.models import Delivery
from core.reference import load_national_fallback
from core.settings import Settings
from ivr.prompts import load_catalogue
from ivr.sip import SipBusy, SipCall, SipEndpoint, SipError, SipNoAnswer
from ivr.sip_runner import SipFlowRunner
from ivr.tts import PromptRenderer, sounds_dir
from outbound.providers import Message, ProviderError
from outbound.templates import message_text

if TYPE_CHECKING:
    from outbound.runtime import OutboundRuntime

log = logging.getLogger(__name__)

#: Final SIP responses that no retry can fix: no such number, number incomplete, rejected.
PERMANENT = frozenset({403, 404, 410, 484, 485, 488, 604})


class SipVoiceProvider:
    """Calls out on one long-lived endpoint (registered once per worker process)."""

    name = "sip"

    def __init__(self, endpoint: SipEndpoint, runner: SipFlowRunner, *,
                 on_final: Callable[[int, str, str], None], ring_timeout: float = 30.0) -> None:
        self.endpoint = endpoint
        self.runner = runner
        self.on_final = on_final
        self.ring_timeout = ring_timeout
        self.conversations: dict[str, threading.Thread] = {}

    async def send(self, message: Message) -> str:
        try:
            call = await asyncio.to_thread(self.endpoint.dial, message.to,
                                           timeout=self.ring_timeout)
        except SipBusy as exc:
            raise ProviderError(True, "busy", str(exc.status or ""), str(exc)) from None
        except SipNoAnswer as exc:
            raise ProviderError(True, "no-answer", str(exc.status or "") or None,
                                str(exc)) from None
        except SipError as exc:
            retryable = exc.status not in PERMANENT
            raise ProviderError(retryable, "sip", str(exc.status or "") or None,
                                str(exc)[:200]) from None
        thread = threading.Thread(target=self._converse, args=(call, message.delivery_id),
                                  name=f"sip-message-{message.delivery_id}", daemon=True)
        self.conversations[call.call_id] = thread
        thread.start()
        return call.call_id

    def _converse(self, call: SipCall, delivery_id: int) -> None:
        status = "completed"
        try:
            self.runner.message_call(call, delivery_id)
        except Exception:
            log.exception("voice message %s on call %s failed", delivery_id, call.call_id)
            status = "failed"
        finally:
            call.hangup()
            self.conversations.pop(call.call_id, None)
            self.on_final(delivery_id, call.call_id, status)

    def wait_idle(self, timeout: float) -> bool:
        """Wait for the calls in progress to end (a worker shutting down, tests)."""
        for thread in list(self.conversations.values()):
            thread.join(timeout)
        return not self.conversations

    async def find_sent(self, message: Message, since: datetime) -> str | None:
        """A SIP trunk keeps no record we could ask: a reclaimed call is placed again."""
        return None

    async def close(self) -> None:
        """The endpoint outlives a batch; the worker stops it at exit."""
        return None


def build_sip_provider(settings: Settings, runtime: OutboundRuntime) -> SipVoiceProvider:
    """The SIP voice provider of a worker: its endpoint registered, its calls reported."""
    from outbound.callbacks import apply_or_keep
    from outbound.queues import schedule
    from outbound.runtime import call_token

    if settings.sip_proxy is None:
        raise ConfigError("VOICE_PROVIDER=sip needs SIP_PROXY (host:port of the registrar)")

    def text(delivery: Delivery) -> str:
        return message_text(delivery.action, delivery.purpose, delivery.language,
                            settings.free_number)

    runner = SipFlowRunner(
        runtime.sessions, load_catalogue(),
        PromptRenderer(sounds_dir(settings), use_gtts=settings.tts == "gtts"),
        national_fallback=load_national_fallback(settings.meldkamer_config),
        message_text=text, dial_timeout=settings.dial_timeout)
    host, port = settings.sip_proxy
    endpoint = SipEndpoint(proxy_host=host, proxy_port=port,
                           username=settings.sip_out_username, password=settings.sip_password,
                           local_ip=settings.sip_local_ip, rtp_ports=settings.sip_rtp_ports)
    runner.endpoint = endpoint
    endpoint.start()

    def on_final(delivery_id: int, call_id: str, status: str) -> None:
        """Record the call's end like Twilio's final CallStatus (kept until its batch has
        recorded the call, when that comes later) and free the trunk line at once."""
        with runtime.sessions() as session:
            again = apply_or_keep(session, runtime.redis, call_id, status, datetime.now(UTC))
            session.commit()
            schedule(runtime.redis, session, again)
        runtime.call_slots.release(call_token(delivery_id))

    return SipVoiceProvider(endpoint, runner, on_final=on_final,
                            ring_timeout=settings.dial_timeout)
