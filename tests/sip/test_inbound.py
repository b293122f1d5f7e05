"""Incoming calls from SIPp through Kamailio to a registered endpoint."""

from __future__ import annotations

import threading
import time

from ivr.sip import SipCall, SipCallState
from tests.sip.audio import tone


def test_inbound_call_answers_plays_collects_dtmf_and_hangs_up(kamailio, sipp, endpoint):
    seen: dict[str, object] = {}
    done = threading.Event()

    def on_call(call: SipCall) -> None:
        seen.update(caller=call.caller, called=call.called, state=call.state)
        call.answer()
        started = time.monotonic()
        call.play(tone(3.0), wait=False)
        seen["digits"] = call.collect_dtmf(max_digits=6, timeout=5, terminator="#")
        seen["collect_seconds"] = time.monotonic() - started
        seen["still_playing"] = call.playing
        call.play(tone(0.2))
        call.hangup()
        done.set()

    endpoint("ivr", on_call=on_call)
    caller = sipp("uac_ivr.xml", service="ivr")

    assert caller.wait() == 0, caller.report()
    assert done.wait(5)
    assert seen["caller"] == "0612345678" and seen["called"] == "ivr"
    assert seen["state"] is SipCallState.RINGING
    # SIPp pressed 3 4 4 1 # (one RFC 4733 pcap per key); '#' ends the input
    assert seen["digits"] == "3441"
    # the first key cut the 3 s prompt short (barge-in)
    assert seen["still_playing"] is False
    assert seen["collect_seconds"] < 3


def test_the_hash_right_after_four_digits_belongs_to_them_not_to_the_next_gather(
        kamailio, sipp, endpoint):
    seen: dict[str, object] = {}
    done = threading.Event()

    def on_call(call: SipCall) -> None:
        call.answer()
        # SIPp presses 3 4 4 1 # 300 ms apart: the fourth digit ends this collection at once
        seen["first"] = call.collect_dtmf(max_digits=4, timeout=5, terminator="#",
                                          lead_keys="*")
        started = time.monotonic()
        seen["second"] = call.collect_dtmf(max_digits=4, timeout=1, terminator="#")
        seen["second_seconds"] = time.monotonic() - started
        call.hangup()
        done.set()

    endpoint("ivr", on_call=on_call)
    caller = sipp("uac_ivr.xml", service="ivr")

    assert caller.wait() == 0, caller.report()
    assert done.wait(5)
    assert (seen["first"], seen["second"]) == ("3441", "")
    # the late "#" was dropped: the second collection ran its whole timeout, not 0.3 s
    assert seen["second_seconds"] >= 0.95


def test_pidf_lo_in_multipart_invite_reaches_on_call(kamailio, sipp, endpoint):
    seen: dict[str, object] = {}
    done = threading.Event()

    def on_call(call: SipCall) -> None:
        seen.update(geolocation=call.geolocation_header, content_type=call.content_type,
                    location=call.location_body(), parts=call.body_parts(),
                    body=call.body, remote_rtp=call.remote_rtp,
                    routing=call.header("geolocation-routing"))
        call.answer()
        call.play(tone(0.2))
        call.hangup()
        done.set()

    endpoint("ivr", on_call=on_call)
    caller = sipp("uac_pidf.xml", service="ivr")

    assert caller.wait() == 0, caller.report()
    assert done.wait(5)
    assert seen["geolocation"] == "<cid:target123@burgernet.test>"
    assert seen["routing"] == "yes"
    assert str(seen["content_type"]).startswith("multipart/mixed")
    assert b"application/pidf+xml" in seen["body"]
    assert [part.content_type for part in seen["parts"]] == ["application/sdp",
                                                             "application/pidf+xml"]
    location = seen["location"]
    assert isinstance(location, bytes)
    assert location.startswith(b"<?xml") and b"<gml:pos>52.3731 4.8922</gml:pos>" in location
    # pyVoIP found the SDP inside the multipart body: our audio goes to SIPp's media port
    assert seen["remote_rtp"] == ("127.0.0.1", caller.media_port)


def test_caller_hanging_up_ends_the_call(kamailio, sipp, endpoint):
    """A caller that gives up while ringing gets 487 (pyVoIP alone leaves it ringing)."""
    seen: dict[str, object] = {}
    done = threading.Event()

    def on_call(call: SipCall) -> None:
        seen["ended"] = call.wait_ended(5)
        seen["state"] = call.state
        done.set()

    endpoint("ivr", on_call=on_call)
    caller = sipp("uac_cancel.xml", service="ivr")

    assert caller.wait() == 0, caller.report()
    assert done.wait(5)
    assert seen == {"ended": True, "state": SipCallState.ENDED}
