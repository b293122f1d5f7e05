"""Connecting a caller to a meldkamer: two legs and an RTP relay between them."""

from __future__ import annotations

import threading
import time

from ivr.sip import SipCall, SipEndpoint, bridge
from tests.sip.audio import loudness, tone


def test_bridge_ends_caller_leg_when_meldkamer_hangs_up(kamailio, sipp, endpoint):
    meldkamer = sipp("uas_answer_then_bye.xml", port=kamailio.trunk_port)
    seen: dict[str, object] = {}
    done = threading.Event()
    sip: SipEndpoint

    def on_call(call: SipCall) -> None:
        call.answer()
        call.play(tone(0.3))
        leg = sip.dial("0900112", timeout=10)
        started = time.monotonic()
        seen["first"] = bridge(call, leg, max_seconds=15)
        seen.update(leg=leg, seconds=time.monotonic() - started, caller_ended=call.ended)
        done.set()

    sip = endpoint("ivr", on_call=on_call)
    caller = sipp("uac_caller.xml", service="ivr")

    # the caller's SIPp passes only when it receives our BYE; the meldkamer's when its BYE is
    # answered through the proxy
    assert meldkamer.wait() == 0, meldkamer.report()
    assert caller.wait() == 0, caller.report()
    assert done.wait(5)
    assert seen["first"] is seen["leg"]
    assert seen["caller_ended"] is True
    assert 1.5 < seen["seconds"] < 5  # the meldkamer talks for 2 s


def test_bridge_relays_audio_between_pyvoip_endpoints(kamailio, endpoint):
    """Caller -> IVR -> meldkamer, all pyVoIP through Kamailio: the tone the caller plays
    reaches the meldkamer through the relay, and its hangup ends the caller's leg."""
    heard: dict[str, float] = {}
    bridged = threading.Event()
    ivr: SipEndpoint

    def ivr_on_call(call: SipCall) -> None:
        call.answer()
        leg = ivr.dial("meldkamer", timeout=5)
        bridged.set()
        bridge(call, leg, max_seconds=10)

    def meldkamer_on_call(call: SipCall) -> None:
        call.answer()
        audio = b""
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            audio += call.read_audio()
            time.sleep(0.05)
        heard["loudness"] = loudness(audio)
        heard["seconds"] = len(audio) / 8000
        call.hangup()

    ivr = endpoint("ivr", on_call=ivr_on_call)
    endpoint("meldkamer", on_call=meldkamer_on_call)
    caller = endpoint("caller")

    call = caller.dial("ivr", timeout=5)
    assert bridged.wait(5)
    call.play(tone(1.5), wait=False)
    assert call.wait_ended(8), "the caller's leg was not hung up after the meldkamer hung up"
    assert heard["loudness"] > 30, heard  # silence would be ~0, the tone ~63
    assert heard["seconds"] > 1.0, heard
