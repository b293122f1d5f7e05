"""pyVoIP 1.6.8's phone made fit for an IVR: `Phone` (a subclass of its `VoIPPhone`) with our
`SipClient`, non-blocking outgoing calls, inbound CANCEL and re-INVITEs, and free RTP ports."""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from typing import cast

from ivr.sip.headers import header_values, uri_of
from ivr.sip.pyvoip import (
    RESPONSE,
    RTP,
    SIP,
    CallState,
    Fix,
    NoPortsAvailableError,
    PhoneStatus,
    VoIPCall,
)
from ivr.sip.pyvoip_client import Dialog, DialogPhone, Outcome, SipClient
from ivr.sip.pyvoip_parsing import status_line

log = logging.getLogger(__name__)


class Phone(DialogPhone):
    """pyVoIP's phone with our SipClient, non-blocking outgoing calls, inbound CANCEL and
    re-INVITEs; the defects each override works around are in `FIXES`."""

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

    def start(self, timeout: float = 5.0) -> None:
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
                            sess_id, self.myIP, sendmode=self.sendmode,
                            # pyVoIP annotates ms as one payload map; it takes {port: map}
                            ms=cast(dict[int, RTP.PayloadType], media))
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
        line = status_line(response)
        code = line.status_code
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
                    outcome.status, outcome.reason = code, line.reason
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
            outcome.status, outcome.reason = code, line.reason
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
        raise NoPortsAvailableError(
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


FIXES = (
    Fix("register-unchecked", "phone",
        "`VoIPPhone.start` returns as if registered when the registrar never answers or refuses "
        "(after `register_timeout`, 30 s), then retries on a Timer in the background; the "
        "REGISTER exchange reads the socket the receive loop also reads, so each can take the "
        "other's messages; REGISTER is never retransmitted on UDP.",
        rfc="RFC 3261 §17.1.2.2 (non-INVITE requests are retransmitted over UDP)",
        members=(Phone.start, Phone.stop, SipClient.start, SipClient.stop, SipClient.recv_loop,
                 SipClient.register_now)),
    Fix("invite-blocks-forever", "phone",
        "`VoIPPhone.call` (through `SIPClient.invite`) waits in a recv() without timeout until a "
        "100, 180 or 401 comes: an unreachable proxy blocks the caller forever, the INVITE is "
        "never retransmitted, and a call that is not answered cannot be cancelled.",
        rfc="RFC 3261 §17.1.1.2 (INVITE retransmission, timer A, and timeout, timer B), §9.1",
        members=(SipClient.invite, SipClient.gen_invite, SipClient.gen_cancel, Phone.place_call,
                 Phone.retransmit_invite, Phone.cancel, Phone.forget)),
    Fix("final-responses-ignored", "phone",
        "`SIPClient.parse_message` and `VoIPPhone.callback` act on 200, 404 and 503 only: a 486, "
        "487, 603 or any other final response to an INVITE is neither ACKed nor ends the call, "
        "which stays DIALING.",
        rfc="RFC 3261 §17.1.1.3 (every non-2xx final response is ACKed), §13.2.2.3",
        members=(SipClient.parse_message, Phone.callback, Phone.on_invite_response)),
    Fix("inbound-call-delayed", "phone",
        "`VoIPPhone._callback_MSG_Invite` hands an inbound call to the callback on a Timer of "
        "1 s: every caller rings a second longer than needed.",
        members=(Phone._callback_MSG_Invite,)),
    Fix("reinvite-rebinds-rtp", "phone",
        "A retransmitted INVITE or a re-INVITE of an answered call makes `VoIPCall.renegotiate` "
        "start its RTP clients again: binding their ports a second time raises OSError and the "
        "INVITE gets no answer.",
        rfc="RFC 3261 §14.2 (a UAS answers a re-INVITE), §17.2.1 (a retransmitted INVITE gets "
            "the last response again)",
        members=(Phone._callback_MSG_Invite, Phone._reanswer)),
    Fix("late-offer-invite", "phone",
        "An INVITE without SDP gets 180 and then a KeyError while the call is set up "
        "(`VoIPCall` reads body[\"c\"]): the caller rings until it gives up.",
        rfc="RFC 3261 §21.4.26 (488 Not Acceptable Here)",
        members=(Phone._callback_MSG_Invite,)),
    Fix("deny-ringing-call", "phone",
        "`VoIPCall.deny` on a ringing call sends 486 and then raises AttributeError stopping RTP "
        "clients that were never started: the call stays in `calls`.",
        members=(Phone.reject,)),
    Fix("cancel-leaves-call-ringing", "phone",
        "An inbound CANCEL gets 200 OK but the call is left ringing (`VoIPPhone.callback` "
        "ignores CANCEL) and the INVITE never gets its 487.",
        rfc="RFC 3261 §9.2 (the UAS answers the cancelled INVITE with 487)",
        members=(SipClient.parse_message, Phone.on_cancel)),
    Fix("rtp-port-in-use", "phone",
        "`VoIPPhone.request_port` picks from the range without checking that the port is free "
        "(a port another process holds fails at answer with OSError), and lists the whole range "
        "for every call (~50 ms with 10,000 ports, on the SIP thread).",
        members=(Phone.request_port,)),
    Fix("tags-never-forgotten", "phone",
        "`SIPClient.tagLibrary` keeps the tag of every call for the life of the process.",
        members=(Phone._prune,)),
)
