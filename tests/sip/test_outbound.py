"""Outgoing calls through Kamailio to a SIPp trunk: answered, busy, never answered."""

from __future__ import annotations

import time

import pytest

from ivr.sip import SipBusy, SipCallState, SipEndpoint, SipError, SipNoAnswer
from tests.sip.audio import tone


def test_answered_call_plays_collects_and_hangs_up(kamailio, sipp, endpoint):
    trunk = sipp("uas_answer.xml", port=kamailio.trunk_port)
    sip = endpoint("ivr")

    call = sip.dial("0201234567", timeout=10)
    assert call.state is SipCallState.ANSWERED
    assert call.called == "0201234567" and not call.inbound
    assert call.remote_rtp == ("127.0.0.1", trunk.media_port)
    call.play(tone(0.5))
    digits = call.collect_dtmf(max_digits=2, timeout=3, terminator=None)
    call.hangup()

    # SIPp only passes after it got our ACK (routed by Contact, with its To-tag) and our BYE
    assert trunk.wait() == 0, trunk.report()
    assert digits == "45"
    assert call.ended


def test_busy_raises_sip_busy_at_once(kamailio, sipp, endpoint):
    trunk = sipp("uas_busy.xml", port=kamailio.trunk_port)
    sip = endpoint("ivr")

    started = time.monotonic()
    with pytest.raises(SipBusy) as raised:
        sip.dial("0201234567", timeout=10)

    assert raised.value.status == 486
    assert time.monotonic() - started < 2
    assert trunk.wait() == 0, trunk.report()


def test_unanswered_call_times_out_and_is_cancelled(kamailio, sipp, endpoint):
    trunk = sipp("uas_noanswer.xml", port=kamailio.trunk_port)
    sip = endpoint("ivr")

    started = time.monotonic()
    with pytest.raises(SipNoAnswer):
        sip.dial("0201234567", timeout=2)
    elapsed = time.monotonic() - started

    assert 2 <= elapsed < 4.5
    # the scenario fails unless it receives our CANCEL (and the ACK of its 487)
    assert trunk.wait() == 0, trunk.report()


def test_unknown_user_raises_sip_error_with_status(kamailio, endpoint):
    sip = endpoint("ivr")
    with pytest.raises(SipError) as raised:
        sip.dial("nobody", timeout=5)
    assert raised.value.status == 404
    assert not isinstance(raised.value, (SipBusy, SipNoAnswer))


def test_start_fails_clearly_without_registrar(kamailio):
    sip = SipEndpoint(proxy_host="127.0.0.1", proxy_port=kamailio.trunk_port, username="ivr",
                      rtp_ports=(30000, 30010))
    started = time.monotonic()
    with pytest.raises(SipError, match="did not answer REGISTER within 1 s"):
        sip.start(timeout=1)
    assert time.monotonic() - started < 2
    sip.stop()
