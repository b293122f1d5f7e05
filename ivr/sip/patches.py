"""Everything that knows pyVoIP 1.6.8's internals, and the fixes for its defects, in one place.

Two kinds of fix:

- module-level patches on message parsing and RTP (`apply()`, run once on import), because
  pyVoIP builds `SIPMessage`s and RTP buffers in many places we cannot reach by subclassing;
- `SipClient` and `Phone`, subclasses of pyVoIP's `SIPClient` and `VoIPPhone` that replace its
  request/response handling so that dialogs work through a proxy (Kamailio) and every wait is
  bounded.

Each fix names the defect it works around. Known and left as is: pyVoIP sends every request
and response to the configured registrar/proxy (fine behind Kamailio); it has no REFER, no
OPTIONS, no 407 proxy authentication, no PRACK/100rel, no re-INVITE of its own; PCMU/PCMA and
RFC 4733 telephone-events only; INVITEs without SDP (late offer) are refused with 488.
"""

from __future__ import annotations

import logging
import random
import re
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from queue import Empty, Queue
from typing import Any

import pyVoIP
import pyVoIP.VoIP  # noqa: F401  (first: pyVoIP.SIP cannot be imported before it)
from pyVoIP import RTP, SIP
from pyVoIP.VoIP import VoIP as _voip
from pyVoIP.VoIP.status import PhoneStatus

from ivr.sip.body import sdp_of
from ivr.sip.errors import SipError

if pyVoIP.__version__ != "1.6.8":
    raise ImportError(f"ivr.sip patches pyVoIP 1.6.8 internals; found pyVoIP {pyVoIP.__version__}."
                      " Re-check every patch in ivr/sip/patches.py before changing the pin.")

log = logging.getLogger(__name__)

CallState = _voip.CallState
VoIPCall = _voip.VoIPCall
SIPMessage = SIP.SIPMessage
RESPONSE = SIP.SIPMessageType.RESPONSE

# Compact forms (RFC 3261 §7.3.3) and the spelling pyVoIP looks headers up by.
_COMPACT = {"i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length",
            "c": "Content-Type", "f": "From", "s": "Subject", "k": "Supported", "t": "To",
            "v": "Via"}
_CANONICAL = {name.lower(): name for name in (
    "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Type", "Content-Length",
    "Content-Encoding", "Allow", "Supported", "WWW-Authenticate", "Authorization",
    "Record-Route", "Route", "Expires", "Max-Forwards", "Geolocation", "User-Agent")}
# A forward jump of the RTP timestamp beyond this many samples resets the receive buffer.
_MAX_RTP_GAP = 8000 * 60


# --- module-level patches --------------------------------------------------------------------

def _parse_raw_header(headers_raw: list[bytes], handle: Callable[[str, str], None]) -> None:
    """pyVoIP 1.6.8 `SIPMessage.parse_raw_header` splits each line on ": " and indexes [1]: an
    empty header (baresip's `Supported:`) raises IndexError and the whole message is dropped
    silently; compact (`i:`, `f:`) and lower-case names are not recognised, so Call-ID etc.
    are missing. Here: split on the first colon, skip empty values, expand compact names."""
    headers: dict[str, Any] = {"Via": []}
    for line in headers_raw:
        name, colon, value = str(line, "utf8").partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not name or not value:
            continue
        name = _COMPACT.get(name) or _CANONICAL.get(name.lower(), name)
        if name == "Via":
            headers["Via"].append(value)
        elif name not in headers:
            headers[name] = value
    for key, val in headers.items():
        handle(key, val)


def _parse_raw_body(body: bytes, handle: Callable[[str, str], None]) -> None:
    """pyVoIP 1.6.8 `parse_raw_body` splits SDP lines on every "=" (cutting values such as
    `a=fmtp:... mode=30`) and raises IndexError on a line without one."""
    for line in body.split(b"\r\n"):
        key, equals, value = str(line, "utf8").partition("=")
        if equals and key.strip():
            handle(key.strip(), value.rstrip())


def _parse_sdp_body(message: SIP.SIPMessage, body: bytes) -> None:
    """pyVoIP 1.6.8 only parses a body whose Content-Type is exactly "application/sdp"; with a
    multipart body (SDP + PIDF-LO) the call gets no media. Parse the SDP part instead."""
    content_type = message.headers.get("Content-Type", "")
    sdp = sdp_of(content_type, body)
    if sdp is None:
        return
    message.headers["Content-Type"] = "application/sdp"  # what parse_body keys on
    try:
        message.parse_raw_body(sdp, message.parse_body)
    finally:
        message.headers["Content-Type"] = content_type


def _parse_sip_message(self: SIP.SIPMessage, data: bytes) -> None:
    """pyVoIP 1.6.8 unpacks `data.split(b"\\r\\n\\r\\n")` into two names: any body with a blank
    line in it (every multipart body) raises ValueError and the INVITE is dropped."""
    head, _, body = data.partition(b"\r\n\r\n")
    headers_raw = head.split(b"\r\n")
    self.heading = headers_raw.pop(0)
    words = self.heading.split(b" ")
    self.version = str(words[-1], "utf8")
    if self.version not in self.SIPCompatibleVersions:
        raise SIP.SIPParseError(f"SIP Version {self.version} not compatible.")
    self.method = str(words[0], "utf8")
    self.parse_raw_header(headers_raw, self.parse_header)
    _parse_sdp_body(self, body)


def _parse_sip_response(self: SIP.SIPMessage, data: bytes) -> None:
    """As `_parse_sip_message`; also, pyVoIP 1.6.8 raises ValueError on any status code missing
    from its `SIPStatus` enum. Keep the real code and reason in `status_code` and `reason`."""
    head, _, body = data.partition(b"\r\n\r\n")
    headers_raw = head.split(b"\r\n")
    self.heading = headers_raw.pop(0)
    words = self.heading.split(b" ", 2)
    self.version = str(words[0], "utf8")
    if self.version not in self.SIPCompatibleVersions:
        raise SIP.SIPParseError(f"SIP Version {self.version} not compatible.")
    self.status_code = int(words[1])
    self.reason = str(words[2], "utf8") if len(words) > 2 else ""
    try:
        self.status = SIP.SIPStatus(self.status_code)
    except ValueError:
        self.status = SIP.SIPStatus(self.status_code // 100 * 100)
    self.parse_raw_header(headers_raw, self.parse_header)
    _parse_sdp_body(self, body)


def _encode_packet(self: RTP.RTPClient, payload: bytes) -> bytes:
    """pyVoIP 1.6.8 `RTPClient.encode_packet` encodes PCMA with the PCMU encoder."""
    if self.preference == RTP.PayloadType.PCMA:
        return self.encode_pcma(payload)
    return self.encode_pcmu(payload)


_original_write = RTP.RTPPacketManager.write


def _packet_manager_write(self: RTP.RTPPacketManager, offset: int, data: bytes) -> None:
    """pyVoIP 1.6.8 writes each RTP payload at its timestamp into one BytesIO: a forward jump
    of the timestamp (a new SSRC, a peer switching sources) zero-fills the gap, up to 4 GiB.
    Restart the buffer at the new timestamp instead."""
    if offset >= self.offset:
        with self.bufferLock, self.buffer.getbuffer() as view:
            gap = offset - self.offset - view.nbytes
        if gap > _MAX_RTP_GAP:
            self.offset = offset
            self.rebuild(True, offset, data)
            return
    _original_write(self, offset, data)


def _rtp_recv(self: RTP.RTPClient) -> None:
    """pyVoIP 1.6.8 polls its non-blocking RTP socket every 10 ms, so each call leg wakes up 100
    times a second even when nothing arrives (most legs: we send audio, the peer sends little
    or nothing); with hundreds of legs the wake-ups alone take a core. Sleep in poll() until
    a packet comes instead (poll, not select: RTP sockets of a busy endpoint have descriptors
    above select's limit of 1024), and look at NSD at least every 200 ms to stop."""
    poller = select.poll()
    poller.register(self.sin, select.POLLIN)
    while self.NSD:
        try:
            if not poller.poll(200):
                continue
            packet = self.sin.recv(8192)
        except BlockingIOError:
            continue
        except OSError:  # closed by stop(), or its descriptor already reused
            if self.NSD:
                time.sleep(0.01)
            continue
        try:
            self.parse_packet(packet)
        except RTP.RTPParseError as exc:
            log.debug("%s", exc)


class _Transmitter:
    """One thread that sends the next 20 ms of audio of every started RTPClient.

    pyVoIP 1.6.8 gives each RTPClient a transmitter thread of its own that wakes up 50 times a
    second; with a few hundred call legs the threads spend more time handing the GIL around
    (system time, load averages in the tens) than sending, until the SIP thread cannot answer
    INVITEs in time. One thread on a fixed 20 ms schedule sends the same packets (same
    sequence numbers, timestamps and SSRC per client) for all of them."""

    PERIOD = 0.02  # 160 samples at 8 kHz: PCMU and PCMA, the only codecs pyVoIP sends

    def __init__(self) -> None:
        self._clients: set[RTP.RTPClient] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, client: RTP.RTPClient) -> None:
        with self._lock:
            self._clients.add(client)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="RTP transmitter",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        next_tick = time.monotonic()
        while True:
            with self._lock:
                clients = list(self._clients)
            for client in clients:
                if client.NSD:
                    self._send(client)
                else:
                    with self._lock:
                        self._clients.discard(client)
            next_tick += self.PERIOD
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.2:  # far behind (machine overloaded): go on, do not burst
                next_tick = time.monotonic()

    @staticmethod
    def _send(client: RTP.RTPClient) -> None:
        """What pyVoIP's `RTPClient.trans` does once per period."""
        payload = client.encode_packet(client.pmout.read())
        header = (bytes((0x80, int(client.preference) & 0x7F))
                  + client.outSequence.to_bytes(2, "big")
                  + client.outTimestamp.to_bytes(4, "big")
                  + client.outSSRC.to_bytes(4, "big"))
        try:
            client.sout.sendto(header + payload, (client.outIP, client.outPort))
        except OSError:
            pass  # stopped meanwhile, or the peer's address is unusable: as pyVoIP, go on
        client.outSequence = (client.outSequence + 1) & 0xFFFF
        client.outTimestamp = (client.outTimestamp + len(payload)) & 0xFFFFFFFF


_TRANSMITTER = _Transmitter()


def _rtp_start(self: RTP.RTPClient) -> None:
    """pyVoIP 1.6.8 `RTPClient.start`, with the shared transmitter instead of a thread per
    client (see `_Transmitter`)."""
    self.sin = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    self.sout = self.sin
    self.sin.bind((self.inIP, self.inPort))
    self.sin.setblocking(False)
    receiver = threading.Timer(0, self.recv)
    receiver.name = "RTP Receiver"
    receiver.start()
    _TRANSMITTER.add(self)


def apply() -> None:
    """Install the module-level patches; idempotent."""
    if getattr(SIP.SIPMessage, "_burgernet_patched", False):
        return
    SIP.SIPMessage.parse_raw_header = staticmethod(_parse_raw_header)
    SIP.SIPMessage.parse_raw_body = staticmethod(_parse_raw_body)
    SIP.SIPMessage.parse_sip_message = _parse_sip_message
    SIP.SIPMessage.parse_sip_response = _parse_sip_response
    RTP.RTPClient.encode_packet = _encode_packet
    RTP.RTPPacketManager.write = _packet_manager_write
    RTP.RTPClient.recv = _rtp_recv
    RTP.RTPClient.start = _rtp_start
    SIP.SIPMessage._burgernet_patched = True


apply()


# --- helpers on pyVoIP's messages and buffers --------------------------------------------------

def uri_of(value: str | None) -> str | None:
    """The URI in a Contact/From/To value: `"x" <sip:a@b>;p=1` -> `sip:a@b`."""
    if not value:
        return None
    match = re.search(r"<([^>]*)>", value)
    return match.group(1) if match else value.split(";", 1)[0].strip()


def header_values(raw: bytes, name: str) -> list[str]:
    """Every value of header NAME in a raw message, in order, comma-separated ones split (pyVoIP
    keeps only the first occurrence of each header)."""
    head = raw.partition(b"\r\n\r\n")[0].decode("utf8", "replace")
    values: list[str] = []
    for line in head.split("\r\n")[1:]:
        key, colon, value = line.partition(":")
        if colon and key.strip().lower() == name.lower():
            values.extend(v.strip() for v in re.findall(r"<[^>]*>[^,]*", value))
    return values


def raw_headers(raw: bytes) -> dict[str, str]:
    """The header section of a raw message as a dict (repeated headers joined with ", ")."""
    head = raw.partition(b"\r\n\r\n")[0].decode("utf8", "replace")
    headers: dict[str, str] = {}
    for line in head.split("\r\n")[1:]:
        key, colon, value = line.partition(":")
        if not colon:
            continue
        key = _COMPACT.get(key.strip()) or key.strip()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return headers


def raw_body(raw: bytes) -> bytes:
    return raw.partition(b"\r\n\r\n")[2]


def pending_out(client: RTP.RTPClient) -> int:
    """Bytes written to CLIENT that its transmitter has not sent yet."""
    manager = client.pmout
    with manager.bufferLock:
        position = manager.buffer.tell()
        end = manager.buffer.seek(0, 2)
        manager.buffer.seek(position)
    return end - position


def flush_out(client: RTP.RTPClient) -> None:
    """Drop the audio still queued for sending (barge-in)."""
    manager = client.pmout
    with manager.bufferLock:
        manager.buffer.seek(0, 2)


def take_received(client: RTP.RTPClient) -> bytes:
    """All audio received on CLIENT since the last call, without waiting."""
    manager = client.pmin
    while manager.rebuilding:
        time.sleep(0.001)
    with manager.bufferLock:
        return manager.buffer.read()


# --- dialogs through a proxy ------------------------------------------------------------------

@dataclass
class Dialog:
    """What in-dialog requests need and pyVoIP does not keep: the route set, the remote target,
    our CSeq, and (for calls we place) the INVITE that CANCEL and non-2xx ACKs copy."""

    uac: bool
    route_set: list[str] = field(default_factory=list)
    remote_target: str | None = None
    local_cseq: int = 0
    invite: str = ""
    invite_uri: str = ""
    invite_via: str = ""
    invite_from: str = ""
    invite_to: str = ""
    created: float = field(default_factory=time.monotonic)


@dataclass
class Outcome:
    """How an INVITE we sent is doing."""

    provisional: threading.Event = field(default_factory=threading.Event)
    final: threading.Event = field(default_factory=threading.Event)
    status: int | None = None
    reason: str = ""
    cancelled: bool = False


class SipClient(SIP.SIPClient):
    """pyVoIP's SIP transport, with one receive thread that sees every message.

    Replaced because pyVoIP 1.6.8: registers on a thread that can steal other messages from the
    socket and retries without bound; `invite()` blocks on `recv()` forever when no response
    comes; responses other than 200/404/503 are ignored (486 never ends a call); the ACK for a
    2xx goes to the To URI with a fresh To-tag (a proxy cannot route it, the UAS never sees it);
    BYE reuses the INVITE's Via headers and ignores Record-Route; 200 OK to BYE/CANCEL gets a
    new To-tag; responses drop Record-Route; Call-IDs repeat after a restart (hash of a
    counter); port 0 (any free port) is not supported.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dialogs: dict[str, Dialog] = {}
        self._register_responses: Queue[SIP.SIPMessage] = Queue()
        self._register_lock = threading.Lock()
        self._refresh: threading.Timer | None = None
        self._thread: threading.Thread | None = None

    # transport

    def start(self, timeout: float = 5.0) -> None:  # type: ignore[override]
        if self.NSD:
            raise RuntimeError("SIP client already started")
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind((self.myIP, self.myPort))
        self.out = self.s
        self.myPort = self.s.getsockname()[1]
        self.NSD = True
        self._thread = threading.Thread(target=self.recv_loop, daemon=True,
                                        name=f"SIP receive {self.myIP}:{self.myPort}")
        self._thread.start()
        try:
            self.register_now(self.default_expires, timeout)
        except BaseException:
            self.stop(deregister=False)
            raise
        self.register_timeout = timeout
        self._schedule_refresh(self.default_expires / 2)

    def stop(self, deregister: bool = True) -> None:  # type: ignore[override]
        if not self.NSD:
            return
        if self._refresh is not None:
            self._refresh.cancel()
        if deregister:
            try:
                self.register_now(0, min(self.register_timeout, 1.0))
            except SipError as exc:
                log.warning("%s", exc)
        self.NSD = False
        self._close_sockets()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)

    def send(self, message: str) -> None:
        """Send to the proxy; after `stop()` (or if the socket fails) log instead of raising, so
        that a call ending while the endpoint stops cannot crash its thread."""
        try:
            self.out.sendto(message.encode("utf8"), (self.server, self.port))
        except OSError as exc:
            log.warning("cannot send %s: %s", message.split(" ", 1)[0], exc)

    def recv_loop(self) -> None:
        while self.NSD:
            try:
                ready, _, _ = select.select([self.s], [], [], 0.2)
                if not ready:
                    continue
                raw = self.s.recv(65535)
            except (OSError, ValueError):
                if not self.NSD:
                    return
                time.sleep(0.01)
                continue
            self._handle(raw)

    def _handle(self, raw: bytes) -> None:
        if not raw.strip(b"\r\n\x00"):
            return
        first_line = raw.split(b"\r\n", 1)[0].decode("utf8", "replace")
        try:
            message = SIP.SIPMessage(raw)
        except Exception as exc:
            log.warning("dropped a SIP message pyVoIP cannot parse (%s): %s", exc, first_line)
            return
        try:
            self.parse_message(message)
        except Exception:
            log.exception("error while handling %s", first_line)

    def parse_message(self, message: SIP.SIPMessage) -> None:
        if message.type == RESPONSE:
            method = message.headers.get("CSeq", {}).get("method")
            if method == "REGISTER":
                self._register_responses.put(message)
            elif method == "INVITE":
                self.phone.on_invite_response(message)
            return
        if message.method == "CANCEL":
            self.phone.on_cancel(message)
            return
        super().parse_message(message)

    # registration

    def register_now(self, expires: int, timeout: float) -> None:
        """REGISTER (EXPIRES=0 removes the binding) and wait for the final answer; retransmits
        on UDP; raises SipError on timeout or refusal."""
        with self._register_lock:
            while not self._register_responses.empty():
                self._register_responses.get_nowait()
            request = self.gen_first_response(deregister=expires == 0)
            response = self._await_register(request, timeout)
            if response.status_code == 401:
                request = self.gen_register(response, deregister=expires == 0)
                response = self._await_register(request, timeout)
            if response.status_code != 200:
                raise SipError(f"registrar {self.server}:{self.port} refused REGISTER for "
                               f"{self.username}: {response.status_code} {response.reason}",
                               status=response.status_code)
        if expires:
            self.phone._status = PhoneStatus.REGISTERED

    def _await_register(self, request: str, timeout: float) -> SIP.SIPMessage:
        cseq = re.search(r"CSeq: (\d+)", request)
        assert cseq is not None
        start = time.monotonic()
        deadline, interval = start + timeout, 0.5
        next_send = start
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise SipError(f"registrar {self.server}:{self.port} did not answer REGISTER "
                               f"within {timeout:g} s")
            if now >= next_send:
                self.send(request)
                next_send, interval = now + interval, min(interval * 2, 4.0)
            try:
                response = self._register_responses.get(
                    timeout=max(0.0, min(deadline, next_send) - now))
            except Empty:
                continue
            if response.headers["CSeq"]["check"] == cseq.group(1) and response.status_code >= 200:
                return response

    def _schedule_refresh(self, delay: float) -> None:
        if not self.NSD:
            return
        self._refresh = threading.Timer(delay, self._refresh_registration)
        self._refresh.daemon = True
        self._refresh.name = f"SIP register refresh {self.username}"
        self._refresh.start()

    def _refresh_registration(self) -> None:
        try:
            self.register_now(self.default_expires, self.register_timeout)
        except SipError as exc:
            log.warning("registration refresh failed, retrying in 5 s: %s", exc)
            self.phone._status = PhoneStatus.REGISTERING
            self._schedule_refresh(5)
            return
        self._schedule_refresh(self.default_expires / 2)

    # messages

    def gen_call_id(self) -> str:
        return f"{uuid.uuid4().hex}@{self.myIP}"

    def _via(self, branch: str | None = None) -> str:
        branch = branch or self.gen_branch()
        return f"Via: SIP/2.0/UDP {self.myIP}:{self.myPort};branch={branch};rport"

    def _contact(self) -> str:
        return f"Contact: <sip:{self.username}@{self.myIP}:{self.myPort}>"

    @staticmethod
    def _join(lines: list[str], body: str = "") -> str:
        return "\r\n".join([*lines, f"Content-Length: {len(body.encode())}", "", body])

    def target_uri(self, target: str) -> str:
        if target.startswith(("sip:", "sips:")):
            return target
        return f"sip:{target}@{self.server}:{self.port}"

    def gen_invite(self, number: str, sess_id: str, ms: dict[int, dict[Any, Any]],
                   sendtype: Any, branch: str, call_id: str, *, caller_id: str | None = None,
                   extra_headers: dict[str, str] | None = None) -> str:
        base = super().gen_invite(number, sess_id, ms, sendtype, branch, call_id)
        body = base.split("\r\n\r\n", 1)[1]
        cseq = self.inviteCounter.current() - 1
        uri = self.target_uri(number)
        dialog = Dialog(uac=True, local_cseq=cseq, invite_uri=uri, invite_via=self._via(branch),
                        invite_from=f"From: <sip:{caller_id or self.username}@{self.server}>;"
                                    f"tag={self.tagLibrary[call_id]}",
                        invite_to=f"To: <{uri}>")
        lines = [f"INVITE {uri} SIP/2.0", dialog.invite_via, "Max-Forwards: 70", self._contact(),
                 dialog.invite_to, dialog.invite_from, f"Call-ID: {call_id}",
                 f"CSeq: {cseq} INVITE", f"Allow: {', '.join(pyVoIP.SIPCompatibleMethods)}",
                 f"User-Agent: pyVoIP {pyVoIP.__version__}",
                 *(f"{k}: {v}" for k, v in (extra_headers or {}).items()),
                 "Content-Type: application/sdp"]
        dialog.invite = self._join(lines, body)
        self.dialogs[call_id] = dialog
        return dialog.invite

    def invite(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("pyVoIP's invite() blocks forever; use Phone.place_call()")

    def gen_cancel(self, call_id: str) -> str:
        dialog = self.dialogs[call_id]
        return self._join([f"CANCEL {dialog.invite_uri} SIP/2.0", dialog.invite_via,
                           "Max-Forwards: 70", dialog.invite_from, dialog.invite_to,
                           f"Call-ID: {call_id}", f"CSeq: {dialog.local_cseq} CANCEL",
                           f"User-Agent: pyVoIP {pyVoIP.__version__}"])

    def gen_ack(self, request: SIP.SIPMessage) -> str:
        """ACK for the final response REQUEST. For a 2xx: a new transaction to the Contact of the
        2xx along the route set, To-tag from the 2xx. For others: hop-by-hop, same branch and
        Request-URI as the INVITE (RFC 3261 §13.2.2.4, §17.1.1.3)."""
        call_id = request.headers["Call-ID"]
        dialog = self.dialogs.get(call_id)
        to = request.headers["To"]
        to_line = f"To: {to['raw']}" + (f";tag={to['tag']}" if to["tag"] else "")
        from_line = f"From: {request.headers['From']['raw']};tag={request.headers['From']['tag']}"
        if 200 <= request.status_code < 300:
            uri = uri_of(request.headers.get("Contact")) or (dialog.invite_uri if dialog else "")
            via = self._via()
            routes = list(reversed(header_values(request.raw, "Record-Route")))
        else:
            uri = dialog.invite_uri if dialog else (uri_of(to["raw"]) or "")
            via = dialog.invite_via if dialog else self._via()
            routes = []
        return self._join([f"ACK {uri} SIP/2.0", via, *(f"Route: {r}" for r in routes),
                           "Max-Forwards: 70", to_line, from_line, f"Call-ID: {call_id}",
                           f"CSeq: {request.headers['CSeq']['check']} ACK",
                           f"User-Agent: pyVoIP {pyVoIP.__version__}"])

    def gen_bye(self, request: SIP.SIPMessage) -> str:
        """BYE within the dialog of REQUEST (our INVITE updated by the 2xx, their INVITE, or a
        2xx we are refusing): own Via, route set, remote target, our CSeq."""
        call_id = request.headers["Call-ID"]
        local_tag = self.tagLibrary[call_id]
        dialog = self.dialogs.get(call_id)
        frm, to = request.headers["From"], request.headers["To"]
        local, remote = (frm, to) if frm["tag"] == local_tag else (to, frm)
        target = (dialog.remote_target if dialog else None) or uri_of(request.headers["Contact"])
        routes = dialog.route_set if dialog else []
        if dialog:
            dialog.local_cseq += 1
            cseq = dialog.local_cseq
        else:
            cseq = int(request.headers["CSeq"]["check"]) + 1
        remote_tag = f";tag={remote['tag']}" if remote["tag"] else ""
        return self._join([f"BYE {target} SIP/2.0", self._via(), *(f"Route: {r}" for r in routes),
                           "Max-Forwards: 70", f"From: {local['raw']};tag={local_tag}",
                           f"To: {remote['raw']}{remote_tag}",
                           f"Call-ID: {call_id}", f"CSeq: {cseq} BYE", self._contact(),
                           f"User-Agent: pyVoIP {pyVoIP.__version__}"])

    def gen_response(self, request: SIP.SIPMessage, code: int, reason: str) -> str:
        """A response without body that keeps the To-tag of REQUEST (or of our 180)."""
        call_id = request.headers["Call-ID"]
        to = request.headers["To"]
        tag = to["tag"] or self.tagLibrary.get(call_id) or self.gen_tag()
        lines = [f"SIP/2.0 {code} {reason}", self._gen_response_via_header(request).rstrip("\r\n"),
                 f"From: {request.headers['From']['raw']};tag={request.headers['From']['tag']}",
                 f"To: {to['raw']};tag={tag}", f"Call-ID: {call_id}",
                 f"CSeq: {request.headers['CSeq']['check']} {request.headers['CSeq']['method']}",
                 f"User-Agent: pyVoIP {pyVoIP.__version__}"]
        return self._join(lines)

    def bye(self, request: SIP.SIPMessage) -> None:
        self.send(self.gen_bye(request))

    def gen_ok(self, request: SIP.SIPMessage) -> str:
        return self.gen_response(request, 200, "OK")

    def gen_ringing(self, request: SIP.SIPMessage) -> str:
        return self._with_record_route(super().gen_ringing(request), request)

    def gen_answer(self, request: SIP.SIPMessage, sess_id: str, ms: Any, sendtype: Any) -> str:
        return self._with_record_route(super().gen_answer(request, sess_id, ms, sendtype), request)

    @staticmethod
    def _with_record_route(message: str, request: SIP.SIPMessage) -> str:
        routes = header_values(request.raw, "Record-Route")
        if not routes:
            return message
        status_line, rest = message.split("\r\n", 1)
        return "\r\n".join([status_line, *(f"Record-Route: {r}" for r in routes), rest])


class Phone(_voip.VoIPPhone):
    """pyVoIP's phone with our SipClient, non-blocking outgoing calls and inbound CANCEL.

    Also replaced: pyVoIP 1.6.8 waits 1 s before handing an inbound call to the callback;
    answers a retransmitted INVITE or re-INVITE by binding its RTP sockets a second time
    (OSError); `VoIPCall.deny()` on a ringing call raises AttributeError after sending 486
    (stops RTP clients that never started); picks RTP ports without checking that they are
    free; accepts an INVITE without SDP and then fails on it.
    """

    def __init__(self, server: str, port: int, username: str, password: str, *, my_ip: str,
                 sip_port: int, rtp_low: int, rtp_high: int,
                 call_callback: Callable[[VoIPCall], None] | None) -> None:
        super().__init__(server, port, username, password, myIP=my_ip,
                         callCallback=call_callback, sipPort=sip_port,
                         rtpPortLow=rtp_low, rtpPortHigh=rtp_high)
        self.sip: SipClient = SipClient(server, port, username, password, phone=self,
                                        myIP=my_ip, myPort=sip_port,
                                        callCallback=self.callback, fatalCallback=self.fatal)
        self.outcomes: dict[str, Outcome] = {}
        self.lock = threading.RLock()

    def start(self, timeout: float = 5.0) -> None:  # type: ignore[override]
        self._status = PhoneStatus.REGISTERING
        try:
            self.sip.start(timeout)
        except BaseException:
            self._status = PhoneStatus.FAILED
            raise
        self.NSD = True

    def stop(self, failed: bool = False) -> None:
        self.NSD = False
        super().stop(failed)

    # inbound

    def callback(self, request: SIP.SIPMessage) -> None:
        if request.type != RESPONSE:
            super().callback(request)

    def _callback_MSG_Invite(self, request: SIP.SIPMessage) -> None:  # noqa: N802
        call_id = request.headers["Call-ID"]
        with self.lock:
            existing = self.calls.get(call_id)
            if existing is not None:
                if existing.state == CallState.ANSWERED:
                    self._reanswer(existing, request)
                return
            if "m" not in request.body or "c" not in request.body:
                self.sip.send(self.sip.gen_response(request, 488, "Not Acceptable Here"))
                return
            if self.callCallback is None:
                self.sip.send(self.sip.gen_busy(request))
                return
            self._prune()
            self.sip.dialogs[call_id] = Dialog(
                uac=False, route_set=header_values(request.raw, "Record-Route"),
                remote_target=uri_of(request.headers.get("Contact")))
            sess_id = random.randint(1, 100000)
            self.sip.send(self.sip.gen_ringing(request))
            try:
                self._create_Call(request, sess_id)
            except Exception:
                log.exception("cannot set up media for call %s", call_id)
                self.sip.send(self.sip.gen_response(request, 500, "Server Internal Error"))
                self.calls.pop(call_id, None)
                return
            thread = threading.Timer(0, self.callCallback, [self.calls[call_id]])
            thread.name = f"SIP call {call_id}"
            thread.daemon = True
            self.threads.append(thread)
            self.threadLookup[thread] = call_id
            thread.start()

    def _reanswer(self, call: VoIPCall, request: SIP.SIPMessage) -> None:
        """Answer a retransmitted INVITE or a re-INVITE with the media we already have."""
        media = {client.inPort: client.assoc for client in call.RTPClients}
        self.sip.send(self.sip.gen_answer(request, call.session_id, media, call.sendmode))
        for m in request.body.get("m", []):
            if m["type"] != "audio":
                continue
            for index, client in enumerate(call.RTPClients):
                client.outIP = request.body["c"][min(index, len(request.body["c"]) - 1)]["address"]
                client.outPort = m["port"] + index

    def on_cancel(self, request: SIP.SIPMessage) -> None:
        """pyVoIP 1.6.8 answers CANCEL 200 but leaves the call ringing and never sends 487."""
        self.sip.send(self.sip.gen_ok(request))
        with self.lock:
            call = self.calls.get(request.headers["Call-ID"])
            if call is not None and call.state == CallState.RINGING:
                self.reject(call, 487, "Request Terminated")

    def reject(self, call: VoIPCall, code: int, reason: str) -> None:
        """Refuse a ringing inbound call with a final response."""
        with self.lock:
            if call.state != CallState.RINGING:
                return
            call.state = CallState.ENDED
            self.calls.pop(call.call_id, None)
        self.sip.send(self.sip.gen_response(call.request, code, reason))

    # outbound

    def place_call(self, target: str, *, caller_id: str | None = None,
                   extra_headers: dict[str, str] | None = None) -> tuple[VoIPCall, Outcome]:
        """Send an INVITE and return at once; responses arrive in `on_invite_response`."""
        port = self.request_port()
        media = {port: {0: RTP.PayloadType.PCMU, 101: RTP.PayloadType.EVENT}}
        call_id = self.sip.gen_call_id()
        sess_id = self.sip.sessID.next()
        invite = self.sip.gen_invite(target, str(sess_id), media, RTP.TransmitType.SENDRECV,
                                     self.sip.gen_branch(), call_id, caller_id=caller_id,
                                     extra_headers=extra_headers)
        with self.lock:
            self._prune()
            call = VoIPCall(self, CallState.DIALING, SIP.SIPMessage(invite.encode("utf8")),
                            sess_id, self.myIP, ms=media, sendmode=self.sendmode)
            self.calls[call_id] = call
            outcome = self.outcomes[call_id] = Outcome()
        self.sip.send(invite)
        return call, outcome

    def retransmit_invite(self, call_id: str) -> None:
        dialog = self.sip.dialogs.get(call_id)
        if dialog is not None:
            self.sip.send(dialog.invite)

    def cancel(self, call_id: str) -> None:
        """Give up on an outgoing call: CANCEL it if it rang; a later 2xx is ACKed and BYEd."""
        with self.lock:
            outcome = self.outcomes.get(call_id)
            if outcome is None or outcome.final.is_set():
                return
            outcome.cancelled = True
            send_cancel = outcome.provisional.is_set()
        if send_cancel:
            self.sip.send(self.sip.gen_cancel(call_id))

    def forget(self, call: VoIPCall) -> None:
        """Drop a call that will not be answered, and free its port."""
        with self.lock:
            if call.state != CallState.ANSWERED:
                call.state = CallState.ENDED
            self.calls.pop(call.call_id, None)
        self.release_ports(call=call)
        call.assignedPorts = {}  # else VoIPCall.__del__ releases them again: ValueError

    def on_invite_response(self, response: SIP.SIPMessage) -> None:
        call_id = response.headers["Call-ID"]
        code = response.status_code
        with self.lock:
            call = self.calls.get(call_id)
            outcome = self.outcomes.get(call_id)
            if code < 200:
                if outcome is not None:
                    outcome.provisional.set()
                    if outcome.cancelled and code > 100 and not outcome.final.is_set():
                        self.sip.send(self.sip.gen_cancel(call_id))
                return
            self.sip.send(self.sip.gen_ack(response))
            if code >= 300:
                if outcome is not None and not outcome.final.is_set():
                    outcome.status, outcome.reason = code, response.reason
                    outcome.final.set()
                    if call is not None:
                        call.state = CallState.ENDED
                        self.calls.pop(call_id, None)
                return
            dialog = self.sip.dialogs.get(call_id)
            if dialog is not None and dialog.remote_target is None:
                dialog.remote_target = uri_of(response.headers.get("Contact"))
                dialog.route_set = list(reversed(header_values(response.raw, "Record-Route")))
            if call is not None and call.state == CallState.ANSWERED:
                return  # a retransmitted 2xx: the ACK above is all it needs
            if (call is None or outcome is None or outcome.cancelled
                    or call.state != CallState.DIALING):
                log.info("refusing a 2xx for a call given up (%s): sending BYE", call_id)
                self.sip.send(self.sip.gen_bye(response))
                if outcome is not None and not outcome.final.is_set():
                    outcome.status, outcome.reason = 487, "Cancelled locally"
                    outcome.final.set()
                return
            call.answered(response)
            outcome.status, outcome.reason = code, response.reason
            outcome.final.set()

    # housekeeping

    def request_port(self, blocking: bool = True) -> int:
        """A free RTP port from the range, picked at random.

        A few random picks first: listing the whole range minus the assigned ports (a list)
        cost ~50 ms per call with 10,000 ports and a few hundred calls up, under the phone's
        lock and on the SIP thread, enough to make INVITEs wait for seconds under load. Only
        when the picks miss (a nearly full range) is the whole range scanned."""
        span = range(self.rtpPortLow, self.rtpPortHigh + 1)
        with self.lock:
            for attempt in range(2):
                assigned = set(self.assignedPorts)
                for port in (random.choice(span) for _ in range(16)):
                    if port not in assigned and _udp_port_free(self.myIP, port):
                        self.assignedPorts.append(port)
                        return port
                candidates = [port for port in span if port not in assigned]
                random.shuffle(candidates)
                for port in candidates:
                    if _udp_port_free(self.myIP, port):
                        self.assignedPorts.append(port)
                        return port
                if attempt == 0:
                    self.release_ports()
        raise _voip.NoPortsAvailableError(
            f"no free RTP port in {self.rtpPortLow}-{self.rtpPortHigh}")

    def _prune(self) -> None:
        """Forget dialogs of calls that ended over a minute ago (pyVoIP never forgets)."""
        cutoff = time.monotonic() - 64
        for call_id, dialog in list(self.sip.dialogs.items()):
            if call_id not in self.calls and dialog.created < cutoff:
                del self.sip.dialogs[call_id]
                self.outcomes.pop(call_id, None)
                self.sip.tagLibrary.pop(call_id, None)


def _udp_port_free(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((ip, port))
        except OSError:
            return False
    return True
