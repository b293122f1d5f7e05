"""The free number over SIP, end to end: SIPp callers through Kamailio to our pyVoIP endpoint,
which runs the same flows as Twilio and bridges to SIPp "meldkamers" of the right region."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.models import CallRecord, Meldkamer
from ivr.flows import Flows, steps_text
from ivr.prompts import load_catalogue
from ivr.sip import SipCall
from ivr.sip_runner import SipFlowRunner
from ivr.steps import Event, Turn
from ivr.tts import PromptRenderer
from tests.routing.conftest import DATA as ROUTING_DATA
from tests.sip.conftest import DATA, free_udp_port

#: The meldkamers of these tests and their (fictional) numbers from config/meldkamers.toml.
NUMBERS = {"MN": "+31690000103", "RT": "+31690000107", "DH": "+31690000106"}
KEYS = {"#": "pound", "*": "star"}
#: When the caller starts keying: during the greeting (~5.5 s of Dutch), the type-ahead of
#: issue 11; and once the postcode prompt plays (after the greeting and its 3 s for keys).
TYPE_AHEAD_MS = 1500
AT_THE_PROMPT_MS = 10000

PIDF_EXAMPLES = ROUTING_DATA / "pidf"

SDP = """v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
"""

PIDF = """<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10"
 xmlns:gml="http://www.opengis.net/gml" entity="pres:caller@burgernet.test">
  <tuple id="loc1"><status><gp:geopriv><gp:location-info>
    <gml:Point srsName="urn:ogc:def:crs:EPSG::4326"><gml:pos>{lat} {lon}</gml:pos></gml:Point>
  </gp:location-info><gp:usage-rules/></gp:geopriv></status></tuple>
</presence>
"""


def caller_scenario(tmp_path: Path, keys: str, *, location: tuple[float, float] | None = None,
                    name: str = "caller", first_ms: int = TYPE_AHEAD_MS,
                    as_printed: bool = False) -> Path:
    """A withheld caller who keys KEYS, the first FIRST_MS after the answer, then one every
    350 ms (a space waits 5 s more), and waits for our BYE; with LOCATION, the INVITE carries
    it as PIDF-LO by value (RFC 6442). AS_PRINTED lays the body out as RFC 6442's Section 5.2
    prints it, with that section's PIDF-LO moved to LOCATION."""
    if location is None:
        content = ("Content-Type: application/sdp\nContent-Length: [len]\n\n" + SDP)
    elif as_printed:
        pidf = (PIDF_EXAMPLES / "rfc6442-5.2-pidf.xml").read_text().replace(
            "32.86726 -97.16054", f"{location[0]} {location[1]}")
        content = ("Geolocation: <cid:target123@atlanta.example.com>\nGeolocation-Routing: no\n"
                   "Content-Type: multipart/mixed; boundary=boundary1\nContent-Length: [len]\n\n"
                   "--boundary1\n\nContent-Type: application/sdp\n\n" + SDP
                   + "\n--boundary1\n\nContent-Type: application/pidf+xml\n"
                     "Content-ID: <target123@atlanta.example.com>\n" + pidf + "--boundary1--\n")
    else:
        content = ("Geolocation: <cid:loc@burgernet.test>\nGeolocation-Routing: yes\n"
                   "Content-Type: multipart/mixed; boundary=b1\nContent-Length: [len]\n\n"
                   "--b1\nContent-Type: application/sdp\n\n" + SDP
                   + "\n--b1\nContent-Type: application/pidf+xml\n"
                     "Content-ID: <loc@burgernet.test>\n\n"
                   + PIDF.format(lat=location[0], lon=location[1]) + "--b1--\n")
    presses, pause = "", first_ms
    for key in keys:
        if key == " ":
            pause += 5000
            continue
        presses += (f'  <pause milliseconds="{pause}"/>\n'
                    f'  <nop><action><exec play_pcap_audio="/usr/share/sip-tester/dtmf_2833_'
                    f'{KEYS.get(key, key)}.pcap"/></action></nop>\n')
        pause = 350
    source = (DATA / "uac_ivr.xml").read_text()
    invite_head, rest = source.split("Max-Forwards: 70\nContent-Type: application/sdp", 1)
    rest = rest.split("]]></send>", 1)[1]
    scenario = invite_head + "Max-Forwards: 70\n" + content + "\n]]></send>" + rest
    scenario = scenario.replace('"Burger" <sip:0612345678', '"Anonymous" <sip:anonymous')
    scenario = re.sub(r'  <pause milliseconds="500"/>.*?(?=  <recv request="BYE")', presses,
                      scenario, flags=re.S)
    scenario = scenario.replace('<recv request="BYE" timeout="15000"/>',
                                '<recv request="BYE" timeout="60000"/>')
    path = tmp_path / f"{name}.xml"
    path.write_text(scenario)
    return path


@pytest.fixture
def meldkamer_ports() -> dict[str, int]:
    return {code: free_udp_port() for code in NUMBERS}


@pytest.fixture
def kamailio_routes(meldkamer_ports: dict[str, int]) -> dict[str, int]:
    return {NUMBERS[code]: port for code, port in meldkamer_ports.items()}


class ListeningRunner(SipFlowRunner):
    """The real runner, keeping a transcript of the turns it carries out (`steps_text`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.heard: list[str] = []

    def _carry_out(self, call: SipCall, flows: Flows, session: Session,
                   turn: Turn) -> Event | None:
        self.heard += steps_text(turn.steps)
        return super()._carry_out(call, flows, session, turn)


@pytest.fixture
def free_number(sip_sessions: sessionmaker[Session], renderer: PromptRenderer,
                endpoint) -> ListeningRunner:
    with sip_sessions() as session:  # the tests route by these numbers
        assert dict(session.execute(select(Meldkamer.code, Meldkamer.phone).where(
            Meldkamer.code.in_(NUMBERS))).all()) == NUMBERS
    runner = ListeningRunner(sip_sessions, load_catalogue(), renderer, national_fallback="MN")
    runner.endpoint = endpoint("burgernet", on_call=runner.free_number_call)
    return runner


def last_record(sip_sessions: sessionmaker[Session]) -> CallRecord:
    with sip_sessions() as session:
        record = session.scalar(select(CallRecord).where(CallRecord.transport == "sip")
                                .order_by(CallRecord.id.desc()).limit(1))
        assert record is not None
        code = session.scalar(select(Meldkamer.code).where(Meldkamer.id == record.meldkamer_id))
        record.meldkamer_code = code  # type: ignore[attr-defined]
        return record


def wait_ended(sip_sessions: sessionmaker[Session], timeout: float = 10.0) -> CallRecord:
    import time

    deadline = time.monotonic() + timeout
    while True:
        record = last_record(sip_sessions)
        if record.ended_at is not None or time.monotonic() > deadline:
            return record
        time.sleep(0.1)


def test_a_caller_keys_a_postcode_and_is_bridged_to_that_regions_meldkamer(
        tmp_path, sipp, free_number, meldkamer_ports, sip_sessions):
    meldkamer = sipp("uas_answer_then_bye.xml", port=meldkamer_ports["MN"], timeout=60)
    caller = sipp(str(caller_scenario(tmp_path, "3441#", first_ms=AT_THE_PROMPT_MS)),
                  service="burgernet", timeout=60)
    assert caller.wait(70) == 0, caller.report()
    assert meldkamer.wait(10) == 0, meldkamer.report()
    record = wait_ended(sip_sessions)
    assert record.meldkamer_code == "MN"
    assert record.routing_reason.startswith("postcode: keyed postcode 3441")
    assert "typed ahead" not in record.routing_reason
    assert record.caller is None and record.outcome == "connected"
    assert record.connected_at is not None and record.ended_at is not None
    assert any(line.endswith("gather: 4 digit(s), 8 s, ends on #") for line in free_number.heard)


def test_a_postcode_typed_ahead_during_the_greeting_is_bridged_to_that_region(
        tmp_path, sipp, free_number, meldkamer_ports, sip_sessions):
    meldkamer = sipp("uas_answer_then_bye.xml", port=meldkamer_ports["RT"], timeout=60)
    caller = sipp(str(caller_scenario(tmp_path, "3011#")), service="burgernet", timeout=60)
    assert caller.wait(70) == 0, caller.report()
    assert meldkamer.wait(10) == 0, meldkamer.report()
    record = wait_ended(sip_sessions)
    assert record.meldkamer_code == "RT"  # 3011 Rotterdam: meldkamer Rotterdam-Rijnmond
    assert record.routing_reason.startswith("postcode: keyed postcode 3011")
    assert record.routing_reason.endswith("typed ahead during the greeting")
    assert record.outcome == "connected"
    catalogue = load_catalogue()
    assert free_number.heard[:3] == [
        f"say[nl]: {catalogue.text('greeting', 'nl')}",
        "gather: 4 digit(s), 3 s, ends on #, may start with *",
        f"say[nl]: {catalogue.text('connecting', 'nl')}"]  # never asked for the postcode


@pytest.mark.parametrize("keys", ["*3011#", "* 3011#"], ids=["typed-ahead", "at-the-prompt"])
def test_star_switches_to_english_and_the_postcode_still_routes(
        tmp_path, sipp, free_number, meldkamer_ports, sip_sessions, keys):
    meldkamer = sipp("uas_answer_then_bye.xml", port=meldkamer_ports["RT"], timeout=60)
    caller = sipp(str(caller_scenario(tmp_path, keys)), service="burgernet", timeout=60)
    assert caller.wait(70) == 0, caller.report()
    assert meldkamer.wait(10) == 0, meldkamer.report()
    record = wait_ended(sip_sessions)
    assert record.meldkamer_code == "RT" and record.outcome == "connected"
    catalogue = load_catalogue()
    asked = f"say[en]: {catalogue.text('ask_postcode', 'en')}"
    assert (asked in free_number.heard) == (keys == "* 3011#")
    assert f"say[en]: {catalogue.text('connecting', 'en')}" in free_number.heard


def test_a_busy_meldkamer_hands_the_caller_to_its_fallback(tmp_path, sipp, free_number,
                                                            meldkamer_ports, sip_sessions):
    busy = sipp("uas_busy.xml", port=meldkamer_ports["RT"])
    fallback = sipp("uas_answer_then_bye.xml", port=meldkamer_ports["DH"], timeout=60)
    caller = sipp(str(caller_scenario(tmp_path, "3011#")), service="burgernet", timeout=60)
    assert caller.wait(70) == 0, caller.report()
    assert busy.wait(10) == 0, busy.report()
    assert fallback.wait(10) == 0, fallback.report()
    record = wait_ended(sip_sessions)
    assert record.meldkamer_code == "DH" and record.routing_reason == "fallback: RT busy"
    assert record.outcome == "connected"


def test_an_invite_with_a_pidf_lo_location_is_routed_by_it(tmp_path, sipp, free_number,
                                                          meldkamer_ports, sip_sessions):
    meldkamer = sipp("uas_answer_then_bye.xml", port=meldkamer_ports["RT"], timeout=60)
    caller = sipp(str(caller_scenario(tmp_path, "", location=(51.9225, 4.4792))),
                  service="burgernet", timeout=60)
    assert caller.wait(70) == 0, caller.report()
    assert meldkamer.wait(10) == 0, meldkamer.report()
    record = wait_ended(sip_sessions)
    assert record.meldkamer_code == "RT"
    assert record.routing_reason.startswith("pidf"), record.routing_reason
    assert record.outcome == "connected"


def test_an_invite_laid_out_as_rfc_6442_prints_it_is_routed_by_its_location(
        tmp_path, sipp, free_number, meldkamer_ports, sip_sessions):
    """Section 5.2's body as printed (blank lines after the boundaries, none after the part
    headers, the point in <gml:location> of a <device>, a civic address in a <person>)."""
    meldkamer = sipp("uas_answer_then_bye.xml", port=meldkamer_ports["RT"], timeout=60)
    caller = sipp(str(caller_scenario(tmp_path, "", location=(51.9225, 4.4792),
                                      as_printed=True)), service="burgernet", timeout=60)
    assert caller.wait(70) == 0, caller.report()
    assert meldkamer.wait(10) == 0, meldkamer.report()
    record = wait_ended(sip_sessions)
    assert record.meldkamer_code == "RT"
    assert record.routing_reason.startswith("pidf: PIDF-LO Point (51.922, 4.479)"), (
        record.routing_reason)
    assert record.outcome == "connected"


def test_no_answer_anywhere_ends_with_the_112_advice_not_silence(
        tmp_path, sipp, free_number, meldkamer_ports, sip_sessions):
    runs = [sipp("uas_busy.xml", port=meldkamer_ports[code], timeout=60)
            for code in ("RT", "DH", "MN")]
    caller = sipp(str(caller_scenario(tmp_path, "3011#")), service="burgernet", timeout=60)
    assert caller.wait(70) == 0, caller.report()
    for run in runs:
        assert run.wait(10) == 0, run.report()
    record = wait_ended(sip_sessions)
    assert record.outcome == "unanswered" and record.meldkamer_code == "MN"
