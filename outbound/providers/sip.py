"""Voice messages over SIP: a pyVoIP endpoint dials the participant through the proxy, and the
message flow (read the action, 1 = put through, 2 = again) runs on the answered call.

`send` returns once the call is answered (or raises for busy, no answer, refused), so the
batch's concurrency and the rate limit govern call set-up exactly as for Twilio. The
conversation goes on in a thread of its own; when it ends, `on_final` reports it, as Twilio
reports its final CallStatus to the webhook; the runtime wires both to the one end of a call
(`outbound.callbacks.end_call`).

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
from datetime import datetime

from core.logs import bind_ids
from ivr.sip import SipBusy, SipCall, SipEndpoint, SipError, SipNoAnswer
from ivr.sip_runner import SipFlowRunner
from outbound.providers import Message, ProviderError

log = logging.getLogger(__name__)

#: Final SIP responses that no retry can fix: no such number, number incomplete, rejected.
PERMANENT = frozenset({403, 404, 410, 484, 485, 488, 604})


class SipVoiceProvider:
    """Calls out on one long-lived endpoint (registered once per worker process)."""

    name = "sip"
    #: Not kept by the batch: the runtime hands every batch this process's one provider, and
    #: `close` leaves its endpoint running.
    keep_open = False

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
        bind_ids(call_id=call.call_id, delivery_id=delivery_id)  # this thread's lines name them
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
