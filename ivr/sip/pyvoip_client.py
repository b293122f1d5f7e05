"""pyVoIP 1.6.8's SIP transport made to work through a proxy: `SipClient` (a subclass of its
`SIPClient`) with the dialog state pyVoIP does not keep, and every wait bounded."""

from __future__ import annotations

import logging
import re
import select
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from queue import Empty, Queue
from typing import Any

from ivr.sip.errors import SipError
from ivr.sip.headers import header_values, uri_of
from ivr.sip.pyvoip import (
    ALLOWED_METHODS,
    RESPONSE,
    SIP,
    VERSION,
    Fix,
    PhoneStatus,
    VoIPPhone,
)
from ivr.sip.pyvoip_parsing import status_line

log = logging.getLogger(__name__)

#: The methods the endpoint answers (pyVoIP's, and OPTIONS: options-unanswered).
ALLOWED = (*ALLOWED_METHODS, "OPTIONS")


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


class DialogPhone(VoIPPhone):
    """The phone a `SipClient` serves (`pyvoip_phone.Phone`): pyVoIP's, plus what the client
    hands the responses to our INVITEs and inbound CANCELs to (pyVoIP's drops both)."""

    def on_invite_response(self, response: SIP.SIPMessage) -> None:
        raise NotImplementedError

    def on_cancel(self, request: SIP.SIPMessage) -> None:
        raise NotImplementedError


class SipClient(SIP.SIPClient):
    """pyVoIP's SIP transport, with one receive thread that sees every message, bounded waits,
    and dialogs that work through a proxy. The defects each override works around are in
    `FIXES` here and in `pyvoip_phone.FIXES`."""

    phone: DialogPhone
    #: Seconds to wait for each answer to a REGISTER (pyVoIP's `register_timeout` is an int,
    #: read only by its own REGISTER code, which this class replaces).
    register_wait: float = 30.0

    def __init__(self, server: str, port: int, username: str, password: str, *,
                 phone: DialogPhone, **kwargs: Any) -> None:
        super().__init__(server, port, username, password, phone=phone, **kwargs)
        self.dialogs: dict[str, Dialog] = {}
        self._register_responses: Queue[SIP.SIPMessage] = Queue()
        self._register_lock = threading.Lock()
        self._refresh: threading.Timer | None = None
        self._thread: threading.Thread | None = None

    # transport

    def start(self, timeout: float = 5.0) -> None:
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
        self.register_wait = timeout
        self._schedule_refresh(self.default_expires / 2)

    def stop(self, deregister: bool = True) -> None:
        if not self.NSD:
            return
        if self._refresh is not None:
            self._refresh.cancel()
        if deregister:
            try:
                self.register_now(0, min(self.register_wait, 1.0))
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
        if message.method not in ALLOWED_METHODS:
            self.answer_unsupported(message)
            return
        super().parse_message(message)

    def answer_unsupported(self, request: SIP.SIPMessage) -> None:
        """OPTIONS gets 200 with what we take (a proxy's keepalive probe: Kamailio's dispatcher
        takes a node that does not answer for dead); any other method we do not know, 501."""
        if request.method == "OPTIONS":
            response = self.gen_response(request, 200, "OK", extra=(
                f"Allow: {', '.join(ALLOWED)}", "Accept: application/sdp"))
        else:
            response = self.gen_response(request, 501, "Not Implemented",
                                         extra=(f"Allow: {', '.join(ALLOWED)}",))
        self.reply(response, request)

    def reply(self, response: str, request: SIP.SIPMessage) -> None:
        """Send RESPONSE where REQUEST's top Via says: its `received` address, and its `rport`
        value or sent-by port (RFC 3261 §18.2.2, RFC 3581 §4), which need not be the proxy's."""
        via = request.headers["Via"][0]
        host = via.get("received") or via["address"][0]
        port = int(via.get("rport") or via["address"][1])
        try:
            self.out.sendto(response.encode("utf8"), (host, port))
        except OSError as exc:
            log.warning("cannot answer %s: %s", request.method, exc)

    # registration

    def register_now(self, expires: int, timeout: float) -> None:
        """REGISTER (EXPIRES=0 removes the binding) and wait for the final answer; retransmits
        on UDP; raises SipError on timeout or refusal."""
        with self._register_lock:
            while not self._register_responses.empty():
                self._register_responses.get_nowait()
            request = self.gen_first_response(deregister=expires == 0)
            response = self._await_register(request, timeout)
            if status_line(response).status_code == 401:
                request = self.gen_register(response, deregister=expires == 0)
                response = self._await_register(request, timeout)
            line = status_line(response)
            if line.status_code != 200:
                raise SipError(f"registrar {self.server}:{self.port} refused REGISTER for "
                               f"{self.username}: {line.status_code} {line.reason}",
                               status=line.status_code)
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
            if (response.headers["CSeq"]["check"] == cseq.group(1)
                    and status_line(response).status_code >= 200):
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
            self.register_now(self.default_expires, self.register_wait)
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
                 f"CSeq: {cseq} INVITE", f"Allow: {', '.join(ALLOWED)}",
                 f"User-Agent: pyVoIP {VERSION}",
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
                           f"User-Agent: pyVoIP {VERSION}"])

    def gen_ack(self, request: SIP.SIPMessage) -> str:
        """ACK for the final response REQUEST. For a 2xx: a new transaction to the Contact of the
        2xx along the route set, To-tag from the 2xx. For others: hop-by-hop, same branch and
        Request-URI as the INVITE (RFC 3261 §13.2.2.4, §17.1.1.3)."""
        call_id = request.headers["Call-ID"]
        dialog = self.dialogs.get(call_id)
        to = request.headers["To"]
        to_line = f"To: {to['raw']}" + (f";tag={to['tag']}" if to["tag"] else "")
        from_line = f"From: {request.headers['From']['raw']};tag={request.headers['From']['tag']}"
        if 200 <= status_line(request).status_code < 300:
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
                           f"User-Agent: pyVoIP {VERSION}"])

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
                           f"User-Agent: pyVoIP {VERSION}"])

    def gen_response(self, request: SIP.SIPMessage, code: int, reason: str, *,
                     extra: tuple[str, ...] = ()) -> str:
        """A response without body that keeps the To-tag of REQUEST (or of our 180), with the
        header lines EXTRA."""
        call_id = request.headers["Call-ID"]
        to = request.headers["To"]
        tag = to["tag"] or self.tagLibrary.get(call_id) or self.gen_tag()
        lines = [f"SIP/2.0 {code} {reason}", self._gen_response_via_header(request).rstrip("\r\n"),
                 f"From: {request.headers['From']['raw']};tag={request.headers['From']['tag']}",
                 f"To: {to['raw']};tag={tag}", f"Call-ID: {call_id}",
                 f"CSeq: {request.headers['CSeq']['check']} {request.headers['CSeq']['method']}",
                 f"User-Agent: pyVoIP {VERSION}", *extra]
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


FIXES = (
    Fix("sip-port-zero", "client",
        "`SIPClient.start` binds port 0 (any free port) but keeps saying :0 in Via and Contact, "
        "so responses and requests for the endpoint go nowhere.",
        rfc="RFC 3261 §18.2.2 (responses go to the port in the top Via)",
        members=(SipClient.start,)),
    Fix("ack-through-proxy", "client",
        "`SIPClient.gen_ack` sends the ACK for a 2xx to the To URI with a fresh To-tag and the "
        "2xx's Via headers: a proxy cannot route it into the dialog and the UAS never sees it "
        "(it retransmits its 200 and gives up); the ACK for a failure gets a fresh To-tag too.",
        rfc="RFC 3261 §13.2.2.4 (2xx ACK: to the remote target along the route set, To-tag of "
            "the 2xx), §17.1.1.3 (non-2xx ACK: the INVITE's branch and Request-URI, the "
            "response's To)",
        members=(SipClient.gen_ack, SipClient.gen_invite)),
    Fix("bye-in-dialog", "client",
        "`SIPClient.gen_bye` copies the Via headers of the message it is given (the INVITE's "
        "branch, or every proxy Via of an inbound INVITE) instead of one Via of its own, sends to "
        "the Contact without the route set, and takes the INVITE's CSeq + 1 as its CSeq.",
        rfc="RFC 3261 §12.2.1.1 (requests within a dialog: remote target, route set, local "
            "CSeq), §8.1.1.7 (a new branch per request)",
        members=(SipClient.gen_bye, SipClient.bye)),
    Fix("response-to-tag", "client",
        "`SIPClient.gen_ok` puts a fresh To-tag on every 200, so the 200 to a BYE or CANCEL does "
        "not match the dialog (or the 180 already sent) and the peer retransmits.",
        rfc="RFC 3261 §8.2.6.2 (the To-tag of a request is kept in its response), §12.1.1",
        members=(SipClient.gen_ok, SipClient.gen_response)),
    Fix("record-route-dropped", "client",
        "`SIPClient.gen_ringing` and `gen_answer` leave out the INVITE's Record-Route headers, so "
        "the caller's side has no route set and sends its ACK and BYE past the proxy.",
        rfc="RFC 3261 §12.1.1 (a UAS copies Record-Route into responses that make a dialog)",
        members=(SipClient.gen_ringing, SipClient.gen_answer)),
    Fix("call-id-repeats", "client",
        "`SIPClient.gen_call_id` hashes a counter that starts at 1 in every process: after a "
        "restart (or in two endpoints on one address) the same Call-IDs come again.",
        rfc="RFC 3261 §8.1.1.4 (Call-IDs unique over space and time)",
        members=(SipClient.gen_call_id,)),
    Fix("options-unanswered", "client",
        "`SIPClient.parse_message` answers no OPTIONS (nor any method it does not know: it logs "
        "a TODO), so a proxy probing its destinations with OPTIONS (Kamailio's dispatcher) "
        "takes the endpoint for dead, and an INFO or MESSAGE is retransmitted until it times "
        "out.",
        rfc="RFC 3261 §11.2 (OPTIONS answered as an INVITE would be, with Allow and Accept), "
            "§8.2.1 and §21.5.2 (501 for a method the UAS does not implement), §18.2.2",
        members=(SipClient.parse_message, SipClient.answer_unsupported, SipClient.reply)),
)
