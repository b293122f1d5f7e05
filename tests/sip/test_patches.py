"""The pyVoIP 1.6.8 fixes, message by message, without a network."""

from __future__ import annotations

import re

import pytest
from pyVoIP import RTP

from ivr.sip.headers import raw_body
from ivr.sip.pyvoip import SIP
from ivr.sip.pyvoip_fixes import apply_fixes
from ivr.sip.pyvoip_phone import Phone

SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
       "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n")


@pytest.fixture(autouse=True)
def _fixes_applied() -> None:
    apply_fixes()  # as a SipEndpoint does when it is built


def message(head: list[str], body: str = "") -> bytes:
    return ("\r\n".join([*head, f"Content-Length: {len(body)}", "", body])).encode()


def phone() -> Phone:
    return Phone("127.0.0.1", 5060, "ivr", "", my_ip="127.0.0.1", sip_port=5062,
                         rtp_low=30000, rtp_high=30010, call_callback=None)


def test_multipart_invite_keeps_its_sdp_and_content_type():
    pidf = "<?xml version='1.0'?>\r\n\r\n<presence/>"
    body = (f"--b1\r\nContent-Type: application/sdp\r\n\r\n{SDP}\r\n"
            f"--b1\r\nContent-Type: application/pidf+xml\r\nContent-ID: <loc@x>\r\n\r\n{pidf}\r\n"
            "--b1--\r\n")
    raw = message(["INVITE sip:ivr@127.0.0.1 SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9",
                   "From: <sip:0612345678@127.0.0.1>;tag=a", "To: <sip:ivr@127.0.0.1>",
                   "Call-ID: c1", "CSeq: 1 INVITE", "Contact: <sip:0612345678@127.0.0.1:5070>",
                   "Geolocation: <cid:loc@x>", "Content-Type: multipart/mixed;boundary=b1"], body)

    parsed = SIP.SIPMessage(raw)

    assert parsed.body["m"][0]["port"] == 4000
    assert parsed.body["c"][0]["address"] == "127.0.0.1"
    assert parsed.headers["Content-Type"] == "multipart/mixed;boundary=b1"
    assert raw_body(raw) == body.encode()


def test_empty_compact_and_lower_case_headers_are_understood():
    raw = message(["BYE sip:ivr@127.0.0.1 SIP/2.0", "v: SIP/2.0/UDP 127.0.0.1:5070;branch=z9",
                   "f: <sip:a@127.0.0.1>;tag=a", "t: <sip:ivr@127.0.0.1>;tag=b", "i: c2",
                   "cseq: 2 BYE", "Supported:", "Warning: 399 host \"a: b\""])

    parsed = SIP.SIPMessage(raw)

    assert parsed.headers["Call-ID"] == "c2"
    assert parsed.headers["CSeq"] == {"check": "2", "method": "BYE"}
    assert parsed.headers["To"]["tag"] == "b"
    assert parsed.headers["Warning"] == '399 host "a: b"'
    assert "Supported" not in parsed.headers


def test_unknown_status_code_is_kept():
    raw = message(["SIP/2.0 499 Something New", "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9",
                   "From: <sip:ivr@127.0.0.1>;tag=a", "To: <sip:0201@127.0.0.1>;tag=b",
                   "Call-ID: c3", "CSeq: 1 INVITE"])

    parsed = SIP.SIPMessage(raw)

    assert (parsed.status_code, parsed.reason) == (499, "Something New")


def test_ack_and_bye_for_a_2xx_follow_contact_route_set_and_to_tag():
    sip = phone().sip
    invite = sip.gen_invite("0201234567", "1", {30000: {0: RTP.PayloadType.PCMU}},
                            RTP.TransmitType.SENDRECV, "z9hG4bKinvite", "c4@127.0.0.1")
    tag = sip.tagLibrary["c4@127.0.0.1"]
    ok = SIP.SIPMessage(message([
        "SIP/2.0 200 OK", "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKinvite",
        "Record-Route: <sip:10.0.0.2;lr>", "Record-Route: <sip:10.0.0.1;lr>",
        f"From: <sip:ivr@127.0.0.1>;tag={tag}", "To: <sip:0201234567@127.0.0.1:5060>;tag=uas",
        "Call-ID: c4@127.0.0.1", "CSeq: 1 INVITE", "Contact: <sip:citizen@10.0.0.9:5090>",
        "Content-Type: application/sdp"], SDP))

    ack = sip.gen_ack(ok)

    assert invite.startswith("INVITE sip:0201234567@127.0.0.1:5060 SIP/2.0\r\n")
    assert ack.startswith("ACK sip:citizen@10.0.0.9:5090 SIP/2.0\r\n")
    assert "To: <sip:0201234567@127.0.0.1:5060>;tag=uas\r\n" in ack
    assert f"From: <sip:ivr@127.0.0.1>;tag={tag}\r\n" in ack
    assert re.findall(r"Route: (.*)\r\n", ack) == ["<sip:10.0.0.1;lr>", "<sip:10.0.0.2;lr>"]
    assert "z9hG4bKinvite" not in ack  # a 2xx ACK is a transaction of its own

    sip.dialogs["c4@127.0.0.1"].remote_target = "sip:citizen@10.0.0.9:5090"
    sip.dialogs["c4@127.0.0.1"].route_set = ["<sip:10.0.0.1;lr>", "<sip:10.0.0.2;lr>"]
    bye = sip.gen_bye(ok)
    assert bye.startswith("BYE sip:citizen@10.0.0.9:5090 SIP/2.0\r\n")
    assert bye.count("Via:") == 1 and "CSeq: 2 BYE" in bye
    assert "To: <sip:0201234567@127.0.0.1:5060>;tag=uas\r\n" in bye


def test_ack_for_a_failure_reuses_the_invite_branch_and_uri():
    sip = phone().sip
    sip.gen_invite("0201234567", "1", {30000: {0: RTP.PayloadType.PCMU}},
                   RTP.TransmitType.SENDRECV, "z9hG4bKinvite", "c5@127.0.0.1")
    tag = sip.tagLibrary["c5@127.0.0.1"]
    busy = SIP.SIPMessage(message([
        "SIP/2.0 486 Busy Here", "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKinvite",
        f"From: <sip:ivr@127.0.0.1>;tag={tag}", "To: <sip:0201234567@127.0.0.1:5060>;tag=uas",
        "Call-ID: c5@127.0.0.1", "CSeq: 1 INVITE"]))

    ack = sip.gen_ack(busy)

    assert ack.startswith("ACK sip:0201234567@127.0.0.1:5060 SIP/2.0\r\n")
    assert "branch=z9hG4bKinvite" in ack


def test_rtp_timestamp_jump_restarts_the_buffer_instead_of_filling_the_gap():
    manager = RTP.RTPPacketManager()
    manager.write(1000, b"\x01" * 160)
    manager.write(1000 + 2**31, b"\x02" * 160)

    assert len(manager.buffer.getvalue()) == 160
    assert manager.read(160) == b"\x02" * 160
