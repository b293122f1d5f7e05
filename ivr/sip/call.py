"""One SIP call leg, inbound or outbound, as the IVR runner drives it."""

from __future__ import annotations

import enum
import time

from ivr.sip.body import BodyPart, body_parts, media_type, part_for_cid
from ivr.sip.errors import SipError
from ivr.sip.headers import raw_body, raw_headers
from ivr.sip.pyvoip import CallState, InvalidStateError, VoIPCall
from ivr.sip.pyvoip_phone import Phone
from ivr.sip.pyvoip_rtp import flush_out, pending_out, take_received

SAMPLE_RATE = 8000
_POLL = 0.02
# Waiting threads wake up no more often than this while audio plays or digits are awaited: with
# a few hundred calls up, 50 wake-ups a second per call kept the GIL so busy that the calls'
# database turns queued for seconds. Digits still register within 50 ms.
_PLAY_POLL = 0.2
_DIGIT_POLL = 0.05
#: Seconds after a full set of digits in which the terminator still belongs to them.
TERMINATOR_GRACE = 2.0


class SipCallState(enum.Enum):
    RINGING = "ringing"
    DIALING = "dialing"
    ANSWERED = "answered"
    ENDED = "ended"


class SipCall:
    """A call leg on a `SipEndpoint`. Audio is 8-bit unsigned 8 kHz mono (what pyVoIP speaks).

    Inbound calls arrive ringing in the endpoint's `on_call`; outbound calls come back answered
    from `SipEndpoint.dial`. Every method is safe on an ended call: audio goes nowhere, DTMF
    collection returns what it has, `hangup()` does nothing.
    """

    def __init__(self, phone: Phone, voip_call: VoIPCall, *, inbound: bool,
                 target: str | None = None) -> None:
        self._phone = phone
        self._voip = voip_call
        self.inbound = inbound
        self._late_terminator: tuple[str, float] | None = None
        request = voip_call.request
        self.call_id: str = voip_call.call_id
        self.headers: dict[str, str] = raw_headers(request.raw)
        self.body: bytes = raw_body(request.raw)
        self.content_type: str = self.header("Content-Type") or ""
        if inbound:
            self.caller: str | None = request.headers["From"]["number"]
            self.called: str = request.headers["To"]["number"] or ""
        else:
            self.caller = phone.username
            self.called = target or request.headers["To"]["number"] or ""

    def __repr__(self) -> str:
        direction = "from" if self.inbound else "to"
        party = self.caller if self.inbound else self.called
        return f"<SipCall {direction} {party} {self.state.value} {self.call_id}>"

    # what the INVITE said

    def header(self, name: str) -> str | None:
        """A header of the INVITE, by case-insensitive name (repeated ones joined by ", ")."""
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None

    @property
    def geolocation_header(self) -> str | None:
        """The Geolocation header (RFC 6442), e.g. `<cid:target@example.nl>`, if any."""
        return self.header("Geolocation")

    def body_parts(self) -> list[BodyPart]:
        """The parts of the INVITE body (SDP, PIDF-LO, ...)."""
        return body_parts(self.content_type, self.body)

    def location_body(self) -> bytes | None:
        """The PIDF-LO the Geolocation header points to by `cid:`, else the first
        application/pidf+xml part; None when the INVITE carries no location by value."""
        parts = self.body_parts()
        for uri in (self.geolocation_header or "").split(","):
            if uri.strip().strip("<>").lower().startswith("cid:"):
                part = part_for_cid(parts, uri)
                if part is not None:
                    return part.data
        for part in parts:
            if media_type(part.content_type) == "application/pidf+xml":
                return part.data
        return None

    # state

    @property
    def state(self) -> SipCallState:
        return SipCallState(self._voip.state.value.lower())

    @property
    def ended(self) -> bool:
        return self._voip.state == CallState.ENDED

    def wait_ended(self, timeout: float) -> bool:
        """Wait up to TIMEOUT seconds for the call to end; True if it has."""
        deadline = time.monotonic() + timeout
        while not self.ended:
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL)
        return True

    @property
    def remote_rtp(self) -> tuple[str, int] | None:
        """Where our audio goes (the peer's address from its SDP), once media is set up."""
        clients = self._voip.RTPClients
        return (clients[0].outIP, clients[0].outPort) if clients else None

    # control

    def answer(self) -> None:
        """Answer a ringing inbound call (200 OK with our SDP; RTP starts)."""
        with self._phone.lock:  # against a CANCEL arriving meanwhile
            if self.state != SipCallState.RINGING:
                raise SipError(f"cannot answer {self!r}: the caller hung up or it was answered")
            if not self._voip.RTPClients:
                raise SipError(f"cannot answer {self!r}: no usable audio codec in the offer")
            self._voip.answer()

    def hangup(self) -> None:
        """End the call: BYE when answered, 486 when still ringing; nothing when ended."""
        state = self.state
        if state == SipCallState.ANSWERED:
            try:
                self._voip.hangup()
            except InvalidStateError:
                pass  # the other side hung up meanwhile
        elif state == SipCallState.RINGING:
            self._phone.reject(self._voip, 486, "Busy Here")

    # audio

    def play(self, frames: bytes, *, wait: bool = True) -> None:
        """Queue FRAMES (8-bit unsigned 8 kHz mono) for sending; with WAIT, return when they
        have been sent, the call ended, or playback was stopped."""
        if self.ended or not frames:
            return
        self._voip.write_audio(frames)
        if wait:
            deadline = time.monotonic() + len(frames) / SAMPLE_RATE + 2.0
            while (queued := self.queued_audio()) > 0 and time.monotonic() < deadline:
                time.sleep(min(_PLAY_POLL, max(_POLL, queued / SAMPLE_RATE)))

    @property
    def playing(self) -> bool:
        """True while queued audio is still being sent."""
        return self.queued_audio() > 0

    def queued_audio(self) -> int:
        """Samples queued for sending and not sent yet."""
        if self.ended:
            return 0
        return max((pending_out(client) for client in self._voip.RTPClients), default=0)

    def stop_playback(self) -> None:
        for client in self._voip.RTPClients:
            flush_out(client)

    def read_audio(self) -> bytes:
        """The audio received since the last read (8-bit unsigned), without waiting."""
        if self.ended or not self._voip.RTPClients:
            return b""
        return take_received(self._voip.RTPClients[0])

    # DTMF

    def collect_dtmf(self, *, max_digits: int, timeout: float, terminator: str | None = "#",
                     lead_keys: str = "", interrupt_playback: bool = True) -> str:
        """Collect up to MAX_DIGITS RFC 4733 digits; '' when none came.

        Like Twilio's <Gather>: TIMEOUT counts from the end of the audio still playing (a
        `play(..., wait=False)` just before) and restarts after each digit; TERMINATOR ends the
        input and is not returned; the first digit stops the playback when INTERRUPT_PLAYBACK.
        One of LEAD_KEYS may come first without counting towards MAX_DIGITS ("*3011").
        Digits pressed earlier (during a blocking `play`) count: call `flush_dtmf()` first to
        ignore them. Returns early with what it has when the call ends.

        When the digits run full, a TERMINATOR pressed right after them (within
        `TERMINATOR_GRACE` s) still belongs to them: the next collection drops it rather than
        ending empty on it.
        """
        digits = ""
        limit = max_digits
        deadline: float | None = None
        while len(digits) < limit:
            digit = self._next_dtmf()
            if digit:
                if interrupt_playback:
                    self.stop_playback()
                if terminator is not None and digit == terminator:
                    break
                if not digits and digit in lead_keys:
                    limit += 1
                digits += digit
                deadline = time.monotonic() + timeout
                continue
            if self.ended:
                break
            if deadline is None:
                if not self.playing:
                    deadline = time.monotonic() + timeout
            elif time.monotonic() >= deadline:
                break
            time.sleep(_DIGIT_POLL)
        else:
            if terminator is not None and digits:
                self._late_terminator = (terminator, time.monotonic() + TERMINATOR_GRACE)
        return digits

    def _next_dtmf(self) -> str:
        """The next digit received, '' if none; a late terminator (see `collect_dtmf`) is
        dropped."""
        digit: str = self._voip.get_dtmf(1)
        late = self._late_terminator
        if late is not None and (digit or time.monotonic() >= late[1]):
            self._late_terminator = None
            if digit == late[0] and time.monotonic() < late[1]:
                return ""
        return digit

    def flush_dtmf(self) -> str:
        """Drop (and return) the digits received and not collected yet."""
        self._late_terminator = None
        flushed: str = self._voip.get_dtmf(1000)
        return flushed
