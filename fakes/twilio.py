"""A local Twilio-compatible server: real HTTP on loopback, for tests, benchmarks and the demo.

It accepts Messages.json and Calls.json like Twilio's REST API (Basic auth with the account
SID and auth token), answers after a configurable latency, fails a configurable share of
requests (HTTP 500, or 429 as Twilio does under load), and sends signed status callbacks
(sent, then delivered; for calls completed, busy or no-answer) to the URL it was given.
A share of requests (`late_rate`) is taken only after `late_ms`, beyond a client's timeout:
the message exists, though the client that asked for it saw no answer. Its lists (GET) are
filtered by To and From, newest first, as Twilio's are. In an outage (`outage`, switched by
a test) every request is answered 503 Service Unavailable, after `latency_ms`.

An answered call requests its TwiML URL (the call's `Url`) as Twilio does. With
MachineDetection it does so the way Twilio documents synchronous answering machine detection
(AsyncAmd false, the default): only once it knows who answered, with AnsweredBy and
MachineDetectionDuration; a machine with DetectMessageEnd after its greeting
(machine_end_beep), with Enable at once (machine_start). The share of answered calls a
machine takes is `machine_rate`; the TwiML each call got is kept on its record.

    python -m fakes.twilio --port 8700 --latency-ms 100 --error-rate 0.01
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import random
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime

from aiohttp import ClientSession, web
from twilio.request_validator import RequestValidator

from fakes.loopback import LoopbackServer

ACCOUNT_SID = "AC" + "0" * 32
E164 = re.compile(r"^\+[1-9]\d{7,14}$")
AUTH_TOKEN = "fake-auth-token"
#: The values of MachineDetection that Twilio takes.
MACHINE_DETECTION = ("Enable", "DetectMessageEnd")


@dataclass
class Behaviour:
    """How the fake behaves; change it between requests in a test."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    throttle_rate: float = 0.0
    busy_rate: float = 0.0
    no_answer_rate: float = 0.0
    #: Of the answered calls, the share an answering machine takes.
    machine_rate: float = 0.0
    #: Status callbacks, and the request of an answered call's TwiML URL.
    callbacks: bool = True
    seed: int | None = None
    #: The share of requests taken (and answered) only after late_ms.
    late_rate: float = 0.0
    late_ms: float = 12_000.0
    #: Every request (sends and look-ups) answered 503 while set.
    outage: bool = False


@dataclass
class Record:
    kind: str
    sid: str
    to: str
    sender: str
    body: str
    callback: str | None
    at: float
    created: str = ""
    url: str | None = None
    machine_detection: str | None = None
    answered_by: str | None = None
    twiml: str | None = None


@dataclass
class FakeTwilio:
    """The server's state: what it accepted, in order."""

    behaviour: Behaviour = field(default_factory=Behaviour)
    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    records: list[Record] = field(default_factory=list)
    rejected: int = 0
    #: Requests held for late_ms.
    late: int = 0
    #: Requests answered 503 in an outage.
    unavailable: int = 0
    #: Sends (POSTs) being answered now, the most there were at once, and when each came in
    #: (the loop's clock) by kind: message or call.
    in_flight: int = 0
    most_in_flight: int = 0
    arrivals: list[tuple[str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.random = random.Random(self.behaviour.seed)
        self.validator = RequestValidator(self.auth_token)
        self._session: ClientSession | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def app(self) -> web.Application:
        app = web.Application()
        base = "/2010-04-01/Accounts/{sid}"
        app.router.add_post(base + "/Messages.json", self.create_message)
        app.router.add_post(base + "/Calls.json", self.create_call)
        app.router.add_get(base + "/Messages.json", self.list_messages)
        app.router.add_get(base + "/Calls.json", self.list_calls)
        app.router.add_get("/_fake/records", self.list_records)
        app.on_cleanup.append(self._close)
        return app

    async def create_message(self, request: web.Request) -> web.Response:
        return await self._create(request, "message")

    async def create_call(self, request: web.Request) -> web.Response:
        return await self._create(request, "call")

    async def _create(self, request: web.Request, kind: str) -> web.Response:
        self.arrivals.append((kind, asyncio.get_running_loop().time()))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return await self._answer_create(request, kind)
        finally:
            self.in_flight -= 1

    async def _answer_create(self, request: web.Request, kind: str) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"code": 20003, "message": "Authenticate", "status": 401},
                                     status=401)
        form = await request.post()
        if self.behaviour.latency_ms:
            await asyncio.sleep(self.behaviour.latency_ms / 1000)
        if self.behaviour.outage:
            return self._unavailable()
        if self.behaviour.late_rate and self.random.random() < self.behaviour.late_rate:
            self.late += 1  # aiohttp goes on with a request whose client has given up
            await asyncio.sleep(self.behaviour.late_ms / 1000)
        roll = self.random.random()
        if roll < self.behaviour.error_rate:
            self.rejected += 1
            return web.json_response({"code": 20500, "message": "Internal Server Error",
                                      "status": 500}, status=500)
        if roll < self.behaviour.error_rate + self.behaviour.throttle_rate:
            self.rejected += 1
            return web.json_response({"code": 20429, "message": "Too Many Requests",
                                      "status": 429}, status=429)
        to = str(form.get("To", ""))
        if not E164.match(to):
            self.rejected += 1
            return web.json_response({"code": 21211, "message": f"The 'To' number {to} is not "
                                      "a valid phone number.", "status": 400}, status=400)
        prefix = "SM" if kind == "message" else "CA"
        sid = prefix + uuid.uuid4().hex
        callback = str(form["StatusCallback"]) if "StatusCallback" in form else None
        record = Record(kind, sid, to, str(form.get("From", "")), str(form.get("Body", "")),
                        callback, asyncio.get_running_loop().time(),
                        format_datetime(datetime.now(UTC), usegmt=False),
                        url=str(form["Url"]) if "Url" in form else None,
                        machine_detection=str(form["MachineDetection"])
                        if form.get("MachineDetection") in MACHINE_DETECTION else None)
        self.records.append(record)
        if (callback or record.url) and self.behaviour.callbacks:
            task = asyncio.create_task(self._callbacks(record))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        return web.json_response({"sid": sid, "account_sid": self.account_sid, "to": to,
                                  "from": form.get("From"), "body": form.get("Body"),
                                  "status": "queued"}, status=201)

    async def list_messages(self, request: web.Request) -> web.Response:
        return self._list(request, "message", "messages")

    async def list_calls(self, request: web.Request) -> web.Response:
        return self._list(request, "call", "calls")

    def _list(self, request: web.Request, kind: str, key: str) -> web.Response:
        """Twilio's list resource, filtered by To and From, newest first (one page of
        PageSize; the DateSent filters are left to the client)."""
        if not self._authorised(request):
            return web.json_response({"code": 20003, "status": 401}, status=401)
        if self.behaviour.outage:
            return self._unavailable()
        to, sender = request.query.get("To"), request.query.get("From")
        size = int(request.query.get("PageSize", "50"))
        items = [{"sid": r.sid, "to": r.to, "from": r.sender, "body": r.body,
                  "date_created": r.created, "date_sent": r.created, "status": "sent"}
                 for r in reversed(self.records)
                 if r.kind == kind and to in (None, r.to) and sender in (None, r.sender)][:size]
        return web.json_response({key: items, "next_page_uri": None, "page": 0,
                                  "page_size": len(items), "uri": request.path,
                                  "first_page_uri": request.path, "previous_page_uri": None,
                                  "start": 0, "end": len(items)})

    def _unavailable(self) -> web.Response:
        self.unavailable += 1
        return web.json_response({"code": 20503, "message": "Service Unavailable",
                                  "status": 503}, status=503)

    def _authorised(self, request: web.Request) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return request.headers.get("Authorization") == f"Basic {expected}"

    async def _callbacks(self, record: Record) -> None:
        if record.kind == "message":
            for status in ("sent", "delivered"):
                await self._status(record, {"MessageSid": record.sid, "MessageStatus": status})
            return
        roll = self.random.random()
        final = ("busy" if roll < self.behaviour.busy_rate else
                 "no-answer" if roll < self.behaviour.busy_rate + self.behaviour.no_answer_rate
                 else "completed")
        await self._status(record, {"CallSid": record.sid, "CallStatus": "ringing"})
        if final == "completed" and record.url:
            await self._answer(record)
        await self._status(record, {"CallSid": record.sid, "CallStatus": final})

    async def _answer(self, record: Record) -> None:
        """The call is answered: ask its URL for TwiML, after detection when it was asked for."""
        params = {"CallSid": record.sid, "AccountSid": self.account_sid, "From": record.sender,
                  "To": record.to, "CallStatus": "in-progress", "Direction": "outbound-api",
                  "ApiVersion": "2010-04-01"}
        if record.machine_detection:
            machine = self.random.random() < self.behaviour.machine_rate
            record.answered_by = (
                "human" if not machine else
                "machine_end_beep" if record.machine_detection == "DetectMessageEnd"
                else "machine_start")
            params |= {"AnsweredBy": record.answered_by, "MachineDetectionDuration": "2400"}
        assert record.url is not None
        record.twiml = await self._post(record.url, params)

    async def _status(self, record: Record, params: dict[str, str]) -> None:
        if record.callback:
            await self._post(record.callback, {**params, "To": record.to,
                                               "AccountSid": self.account_sid})

    async def _post(self, url: str, params: dict[str, str]) -> str | None:
        if self._session is None:
            self._session = ClientSession()
        signature = self.validator.compute_signature(url, params)
        try:
            async with self._session.post(url, data=params,
                                          headers={"X-Twilio-Signature": signature}) as reply:
                return await reply.text()
        except OSError:
            return None  # like Twilio: a callback that cannot be delivered is dropped

    async def list_records(self, _request: web.Request) -> web.Response:
        return web.json_response({"records": [r.__dict__ for r in self.records],
                                  "rejected": self.rejected, "late": self.late,
                                  "unavailable": self.unavailable})

    async def _close(self, _app: web.Application) -> None:
        for task in list(self._pending):
            task.cancel()
        if self._session is not None:
            await self._session.close()


class FakeTwilioServer(LoopbackServer):
    """Runs a FakeTwilio on 127.0.0.1 in a background thread."""

    def __init__(self, fake: FakeTwilio | None = None, port: int = 0) -> None:
        super().__init__(port)
        self.fake = fake or FakeTwilio()

    def app(self) -> web.Application:
        return self.fake.app()


def main() -> None:
    parser = argparse.ArgumentParser(description="A local Twilio-compatible fake server")
    parser.add_argument("--port", type=int, default=8700)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--throttle-rate", type=float, default=0.0)
    parser.add_argument("--busy-rate", type=float, default=0.0)
    parser.add_argument("--no-answer-rate", type=float, default=0.0)
    parser.add_argument("--machine-rate", type=float, default=0.0,
                        help="share of answered calls an answering machine takes")
    parser.add_argument("--no-callbacks", action="store_true", help="send no status callbacks")
    parser.add_argument("--late-rate", type=float, default=0.0,
                        help="share of requests taken and answered only after --late-ms")
    parser.add_argument("--late-ms", type=float, default=12_000.0)
    args = parser.parse_args()
    fake = FakeTwilio(Behaviour(args.latency_ms, args.error_rate, args.throttle_rate,
                                args.busy_rate, args.no_answer_rate, args.machine_rate,
                                callbacks=not args.no_callbacks, late_rate=args.late_rate,
                                late_ms=args.late_ms))
    web.run_app(fake.app(), host="127.0.0.1", port=args.port, access_log=None)


if __name__ == "__main__":
    main()
