"""A UDP socket on loopback where the registrar/proxy would be, for the pyVoIP fix tests: it
answers REGISTER with 200 (when told to) and keeps every other message for the test."""

from __future__ import annotations

import re
import socket
import threading
from queue import Empty, Queue

from fakes.sip import HOST

SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
       "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n")


def sip_message(head: list[str], body: str = "") -> bytes:
    return "\r\n".join([*head, f"Content-Length: {len(body)}", "", body]).encode()


def inbound_invite(call_id: str, *, rtp_port: int = 4000, sdp: bool = True,
                   record_route: tuple[str, ...] = ()) -> bytes:
    """An INVITE from a caller as the proxy relays it (two Vias, Record-Route if given)."""
    head = ["INVITE sip:ivr@127.0.0.1 SIP/2.0",
            "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKproxy",
            "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKcaller",
            *(f"Record-Route: {route}" for route in record_route),
            "From: <sip:0612345678@127.0.0.1>;tag=caller", "To: <sip:ivr@127.0.0.1>",
            f"Call-ID: {call_id}", "CSeq: 1 INVITE", "Contact: <sip:0612345678@127.0.0.1:5070>"]
    if not sdp:
        return sip_message(head)
    return sip_message([*head, "Content-Type: application/sdp"], SDP.format(port=rtp_port))


def cancel_for(invite: bytes) -> bytes:
    """The CANCEL of INVITE (same Via, From, To, Call-ID, CSeq number)."""
    lines = invite.partition(b"\r\n\r\n")[0].decode().split("\r\n")[1:]
    keep = [line for line in lines if line.split(":", 1)[0] in ("Via", "From", "To", "Call-ID")]
    return sip_message(["CANCEL sip:ivr@127.0.0.1 SIP/2.0", *keep, "CSeq: 1 CANCEL"])


def response_to(request: bytes, status: str, *, to_tag: str = "uas",
                extra: tuple[str, ...] = ()) -> bytes:
    """A response to REQUEST as its peer would send it (Vias, From, Call-ID, CSeq copied)."""
    lines = request.partition(b"\r\n\r\n")[0].decode().split("\r\n")[1:]
    copied = [line for line in lines if line.split(":", 1)[0] in ("Via", "From", "Call-ID",
                                                                   "CSeq")]
    to = next(line for line in lines if line.startswith("To:"))
    if ";tag=" not in to:
        to += f";tag={to_tag}"
    return sip_message([f"SIP/2.0 {status}", *copied, to, *extra])


def first_line(message: bytes) -> str:
    return message.split(b"\r\n", 1)[0].decode()


def header(message: bytes, name: str) -> str | None:
    match = re.search(rf"^{re.escape(name)}: (.*)$", message.decode(), re.M)
    return match.group(1).rstrip("\r") if match else None


class LoopbackProxy:
    """Reads what an endpoint sends to its proxy; answers REGISTER with 200 if ANSWER_REGISTER."""

    def __init__(self, *, answer_register: bool = False) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(0.1)
        self.port: int = self.sock.getsockname()[1]
        self.answer_register = answer_register
        self.registers: list[bytes] = []
        self._messages: Queue[bytes] = Queue()
        self._running = True
        self._thread = threading.Thread(target=self._serve, name="loopback proxy", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while self._running:
            try:
                data, address = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            if data.startswith(b"REGISTER "):
                self.registers.append(data)
                if self.answer_register:
                    self.sock.sendto(response_to(data, "200 OK", extra=("Expires: 120",)),
                                     address)
                continue
            self._messages.put(data)

    def receive(self, timeout: float = 5.0) -> bytes | None:
        """The next message other than REGISTER, or None after TIMEOUT seconds."""
        try:
            return self._messages.get(timeout=timeout)
        except Empty:
            return None

    def received(self) -> list[bytes]:
        """Every message other than REGISTER received so far, without waiting."""
        messages = []
        while not self._messages.empty():
            messages.append(self._messages.get_nowait())
        return messages

    def send(self, data: bytes, port: int) -> None:
        self.sock.sendto(data, (HOST, port))

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=2)
        self.sock.close()
