"""SMS and voice through a Twilio-compatible REST API, with the official client on aiohttp.

The base URL is configurable, so Twilio, other Twilio-compatible services and our local fake
all run through this same code.

Calls ask for answering machine detection (MachineDetection=DetectMessageEnd, synchronous):
Twilio requests the voice URL only once it knows who answered, with AnsweredBy, and for an
answering machine only after its greeting, so the message is left after the beep
(`web.voice.message`).
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from functools import cache
from typing import Any
from urllib.parse import urlencode

from aiohttp import (
    ClientConnectorError,
    ClientError,
    ClientSession,
    ClientTimeout,
    ConnectionTimeoutError,
    TCPConnector,
)
from twilio.base import values
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from core.models import Channel
from outbound.providers import Message, ProviderError

#: Synchronous detection that waits for the end of a machine's greeting (Twilio's AMD).
MACHINE_DETECTION = "DetectMessageEnd"
#: Twilio error codes that no retry can fix (invalid or unreachable numbers, opt-outs).
PERMANENT = {"21211", "21214", "21408", "21610", "21612", "21614", "30003", "30005", "30006"}
#: HTTP statuses by which the carrier refuses service as a whole, not this message.
UNAVAILABLE = {429, 503}


FORM = "application/x-www-form-urlencoded"
#: Messages or calls to one number asked for when looking one up (Twilio's default page).
PAGE = 50
#: Connections a provider may hold open at once: at least the sends a batch keeps in flight
#: (`outbound.sender.MAX_IN_FLIGHT`). aiohttp's default of 100 made the rest wait for a
#: connection after the rate limit had let them go, and then leave together: a slow carrier
#: saw bursts above the rate.
CONNECTIONS = 256


@cache
def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


class LeanAsyncHttpClient(AsyncTwilioHttpClient):
    """The twilio client's own aiohttp transport, without three per-request costs that buy
    nothing here and took a third of a worker's CPU: aiohttp's FormData (a multipart writer
    built for every form), a new BasicAuth object (deprecated, with its warning), and the
    debug-log lines formatted even when logging is off. Same requests on the wire, on up to
    CONNECTIONS connections at once."""

    def __init__(self, timeout: float | None = None, connections: int = CONNECTIONS) -> None:
        super().__init__(pool_connections=False, timeout=timeout)
        session: Any = ClientSession(connector=TCPConnector(limit=connections))
        self.session = session  # the base class's attribute, as it types it

    async def request(self, method: str, url: str, params: dict[str, object] | None = None,
                      data: dict[str, object] | None = None,
                      headers: dict[str, str] | None = None,
                      auth: tuple[str, str] | None = None, timeout: float | None = None,
                      allow_redirects: bool = False) -> Response:
        if timeout is not None and timeout <= 0:
            raise ValueError(timeout)
        headers = dict(headers or {})
        if auth is not None:
            headers["Authorization"] = _basic(*auth)
        body = None
        if data:
            body = urlencode(data, doseq=True)
            headers["Content-Type"] = FORM
        limit = timeout if timeout is not None else self.timeout
        assert self.session is not None
        async with self.session.request(
                method.upper(), url, params=params, data=body, headers=headers,
                timeout=ClientTimeout(total=limit) if limit else None,
                allow_redirects=allow_redirects) as reply:
            return Response(reply.status, await reply.text(), reply.headers)


class TwilioRestProvider:
    """Messages.create for SMS, Calls.create (pointing at our TwiML URL) for voice."""

    name = "twilio"
    #: One client per worker process: its aiohttp connections stay open between batches.
    keep_open = True

    def __init__(self, account_sid: str, auth_token: str, sender: str, *,
                 base_url: str | None = None, voice_url: str | None = None,
                 timeout: float = 10.0) -> None:
        self.sender = sender
        self.voice_url = voice_url
        self.http = LeanAsyncHttpClient(timeout=timeout)
        self.client = Client(account_sid, auth_token, http_client=self.http)
        if base_url:
            self.client.api.base_url = base_url.rstrip("/")

    async def send(self, message: Message) -> str:
        try:
            if message.channel == Channel.VOICE:
                if not self.voice_url:
                    raise ProviderError(False, "no_voice_url", detail="voice needs a TwiML URL")
                call = await self.client.calls.create_async(
                    to=message.to, from_=self.sender,
                    url=f"{self.voice_url}?delivery={message.delivery_id}",
                    machine_detection=MACHINE_DETECTION,
                    status_callback=message.status_callback or values.unset)
                return str(call.sid)
            sms = await self.client.messages.create_async(
                to=message.to, from_=self.sender, body=message.body,
                status_callback=message.status_callback or values.unset)
            return str(sms.sid)
        except TwilioRestException as exc:
            code = str(exc.code or "")
            retryable = exc.status in {429} or exc.status >= 500
            if code in PERMANENT:
                retryable = False
            raise ProviderError(retryable, f"http_{exc.status}", code or None,
                                str(exc.msg)[:200],
                                unavailable=retryable and exc.status in UNAVAILABLE) from None
        except (ClientConnectorError, ConnectionTimeoutError) as exc:  # never reached Twilio
            raise ProviderError(True, "network", None, type(exc).__name__,
                                unavailable=True) from None
        except (TimeoutError, OSError, ClientError) as exc:
            # sent, and no answer (a timeout, a reset): Twilio may have taken it
            raise ProviderError(True, "no_answer", None, type(exc).__name__,
                                unknown=True) from None

    async def find_sent(self, message: Message, since: datetime) -> str | None:
        """The message (or call) to the same number from our number, created since SINCE
        (less a margin for Twilio's clock and its whole seconds), with the same text.

        Twilio's list filters are To, From and DateSent. DateSent counts whole days and leaves
        out what Twilio still holds in its queue (no date sent yet), so only To and From are
        asked and the page (newest first) is filtered here; one number gets few of our
        messages, so a page of PAGE is plenty."""
        margin = since - timedelta(seconds=2)
        try:
            if message.channel == Channel.VOICE:
                calls = await self.client.calls.list_async(to=message.to, from_=self.sender,
                                                           limit=PAGE)
                found = [c.sid for c in calls if c.date_created and c.date_created >= margin]
            else:
                sent = await self.client.messages.list_async(to=message.to, from_=self.sender,
                                                             limit=PAGE)
                found = [m.sid for m in sent if m.body == message.body
                         and m.date_created and m.date_created >= margin]
        except TwilioRestException as exc:
            raise ProviderError(True, f"http_{exc.status}", str(exc.code or "") or None,
                                "lookup failed") from None
        except (TimeoutError, OSError, ClientError) as exc:
            raise ProviderError(True, "network", None, f"lookup: {type(exc).__name__}") from None
        return str(found[0]) if found else None

    async def close(self) -> None:
        await self.http.close()

