"""A SIP endpoint: one pyVoIP phone registered at a registrar/proxy, taking and placing calls."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from core.logs import log_context
from ivr.sip.call import SipCall
from ivr.sip.errors import SipError, SipNoAnswer, error_for_status
from ivr.sip.pyvoip import PhoneStatus, VoIPCall
from ivr.sip.pyvoip_fixes import apply_fixes
from ivr.sip.pyvoip_phone import Phone

log = logging.getLogger(__name__)

_CANCEL_GRACE = 2.0  # how long to wait for the 487 after a CANCEL


class SipEndpoint:
    """One pyVoIP phone registered to a registrar/proxy (Kamailio).

    pyVoIP sends every request to the proxy, so the proxy routes everything: numbers to the
    trunk, users to their registrations. Inbound calls run ON_CALL on a thread of their own,
    ringing; when ON_CALL returns the call is hung up (or refused, if never answered), so
    ON_CALL owns the call for its whole life. Without ON_CALL, inbound calls get 486.
    Building one installs the fixes to pyVoIP (`pyvoip_fixes.apply_fixes`) for the process.
    """

    def __init__(self, *, proxy_host: str, proxy_port: int, username: str, password: str = "",
                 local_ip: str = "127.0.0.1", sip_port: int = 0,
                 rtp_ports: tuple[int, int] = (10000, 20000),
                 on_call: Callable[[SipCall], None] | None = None) -> None:
        self.proxy_host = proxy_host
        self.proxy_port = proxy_port
        self.username = username
        self._on_call = on_call
        apply_fixes()
        self._phone = Phone(proxy_host, proxy_port, username, password, my_ip=local_ip,
                                    sip_port=sip_port, rtp_low=rtp_ports[0],
                                    rtp_high=rtp_ports[1],
                                    call_callback=self._incoming if on_call else None)
        self._started = False

    def __repr__(self) -> str:
        return f"<SipEndpoint {self.username} via {self.proxy_host}:{self.proxy_port}>"

    @property
    def sip_port(self) -> int:
        """The local SIP port (the one picked when constructed with 0)."""
        return int(self._phone.sip.myPort)

    @property
    def registered(self) -> bool:
        return self._phone.get_status() == PhoneStatus.REGISTERED

    def start(self, timeout: float = 5.0) -> None:
        """Register; raise SipError if the registrar does not answer within TIMEOUT or refuses.
        The registration is refreshed in the background until `stop()`."""
        try:
            self._phone.start(timeout)
        except OSError as exc:
            raise SipError(f"cannot open SIP port {self._phone.sip.myIP}:"
                           f"{self._phone.sip.myPort}: {exc}") from exc
        self._started = True

    def stop(self) -> None:
        """Hang up every call, unregister (waiting at most 1 s) and close the socket."""
        if self._started:
            self._started = False
            self._phone.stop()

    def __enter__(self) -> SipEndpoint:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def dial(self, target: str, *, timeout: float = 30.0, caller_id: str | None = None,
             extra_headers: dict[str, str] | None = None) -> SipCall:
        """Call TARGET (a number or user, routed by the proxy, or a sip: URI) and return the
        answered call. Raises SipBusy (486/600/603), SipNoAnswer (no answer within TIMEOUT, or
        408/480/487; the INVITE is cancelled) or SipError (any other failure, or no response at
        all from the proxy). CALLER_ID sets
        the user part of From."""
        if not self._started:
            raise SipError(f"{self!r} is not started")
        voip_call, outcome = self._phone.place_call(target, caller_id=caller_id,
                                                    extra_headers=extra_headers)
        start = time.monotonic()
        deadline = start + timeout
        resend_at, interval = start + 0.5, 0.5
        while not outcome.final.is_set():
            now = time.monotonic()
            if now >= deadline:
                break
            if not outcome.provisional.is_set() and now >= resend_at:
                self._phone.retransmit_invite(voip_call.call_id)  # RFC 3261 timer A
                resend_at, interval = now + interval * 2, interval * 2
            outcome.final.wait(min(0.05, max(0.0, deadline - now)))
        if not outcome.final.is_set():
            rang = outcome.provisional.is_set()
            self._phone.cancel(voip_call.call_id)
            if rang:
                outcome.final.wait(_CANCEL_GRACE)
            self._phone.forget(voip_call)  # a 2xx that still comes is ACKed and BYEd
            if not rang:
                raise SipError(f"call to {target}: no response at all from the proxy "
                               f"{self.proxy_host}:{self.proxy_port} within {timeout:g} s")
            raise SipNoAnswer(f"call to {target}: no answer within {timeout:g} s",
                              status=outcome.status)
        assert outcome.status is not None
        if 200 <= outcome.status < 300:
            return SipCall(self._phone, voip_call, inbound=False, target=target)
        self._phone.forget(voip_call)
        raise error_for_status(outcome.status, outcome.reason, target)

    def _incoming(self, voip_call: VoIPCall) -> None:
        call = SipCall(self._phone, voip_call, inbound=True)
        with log_context(call_id=call.call_id):  # every line of the call names it
            try:
                assert self._on_call is not None
                self._on_call(call)
            except Exception:
                log.exception("on_call failed for %r", call)
            finally:
                call.hangup()
