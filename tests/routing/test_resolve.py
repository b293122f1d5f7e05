from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from core.errors import ConfigError
from core.models import Channel, DeliveryStatus, LocationKind
from core.participants import add_location, add_location_by_postcode
from routing.resolve import (
    REASONS,
    RouteDecision,
    RouteRequest,
    fallback_for,
    recent_action,
    resolve,
)
from tests.routing.conftest import DATA, NOW, seconds_per_call

MULTIPART = "multipart/mixed; boundary=boundary1"
CID = "<cid:target123@burgernet.example>"


def _route(db: Session, **fields) -> RouteDecision:
    return resolve(db, RouteRequest(**fields), NOW, national_fallback="MN")


def test_a_caller_who_got_an_active_action_reaches_its_meldkamer(
        db: Session, participant, sent_action) -> None:
    person = participant()
    action = sent_action(person, "OB")
    decision = _route(db, caller="0690001234", caller_national="NL", postcode="3441")
    assert decision == RouteDecision(
        meldkamer_code="OB", meldkamer_name="Meldkamer Oost-Brabant", phone="+31690000109",
        sip_uri="sip:+31690000109@127.0.0.1:5060", fallback_code="LB", reason="action",
        detail=f"caller was sent action {action.id} (active) by sms", action_id=action.id,
        participant_id=person.id, caller="+31690001234")


def test_a_national_number_from_a_transport_that_sends_e164_is_nobody(
        db: Session, participant, sent_action) -> None:
    """Twilio's From is E.164: "0690001234" or "690001234" there is not +31690001234."""
    person = participant()
    sent_action(person, "OB")
    for raw in ("0690001234", "690001234", "31690001234"):
        decision = _route(db, caller=raw, postcode="3441")
        assert (decision.reason, decision.participant_id, decision.caller) == (
            "postcode", None, None)
        assert f"caller id {raw!r} is not a phone number" in decision.detail


def test_a_voice_message_left_on_voicemail_counts_as_sent(
        db: Session, participant, sent_action) -> None:
    person = participant()
    action = sent_action(person, "OB", status=DeliveryStatus.VOICEMAIL, channel=Channel.VOICE)
    decision = _route(db, caller="+31690001234", postcode="3441")
    assert (decision.reason, decision.action_id) == ("action", action.id)


def test_an_action_that_ended_two_hours_ago_still_counts(db: Session, participant,
                                                        sent_action) -> None:
    person = participant()
    action = sent_action(person, "LB", ended_ago=timedelta(hours=2), sent_ago=timedelta(hours=5))
    decision = _route(db, caller="sip:+31690001234@sbc.example;user=phone")
    assert (decision.reason, decision.meldkamer_code, decision.action_id) == (
        "action", "LB", action.id)
    assert "(ended)" in decision.detail


def test_an_action_that_ended_two_days_ago_does_not(db: Session, participant,
                                                    sent_action) -> None:
    person = participant()
    sent_action(person, "OB", ended_ago=timedelta(days=2), sent_ago=timedelta(days=2, hours=1))
    decision = _route(db, caller="+31690001234", postcode="2611")
    assert (decision.reason, decision.meldkamer_code, decision.action_id) == (
        "postcode", "DH", None)
    assert decision.participant_id == person.id
    assert f"no action sent to participant {person.id} is active or ended within 6 h" in (
        decision.detail)


@pytest.mark.parametrize("status", [DeliveryStatus.QUEUED, DeliveryStatus.SENDING,
                                    DeliveryStatus.FAILED, DeliveryStatus.SKIPPED])
def test_a_message_that_never_went_out_does_not_count(db: Session, participant, sent_action,
                                                      status: DeliveryStatus) -> None:
    sent_action(participant(), "OB", status=status)
    assert _route(db, caller="+31690001234").reason == "national_fallback"


def test_the_latest_action_sent_wins(db: Session, participant, sent_action) -> None:
    person = participant()
    sent_action(person, "OB", sent_ago=timedelta(hours=3))
    latest = sent_action(person, "NN", sent_ago=timedelta(minutes=4), channel=Channel.VOICE,
                         status=DeliveryStatus.ANSWERED)
    decision = _route(db, caller="+31690001234")
    assert (decision.meldkamer_code, decision.action_id) == ("NN", latest.id)
    assert decision.detail.endswith("by voice")


def test_a_withheld_caller_with_a_garbage_postcode_gets_the_national_fallback(
        db: Session) -> None:
    decision = _route(db, caller="anonymous", postcode="12*#")
    assert (decision.reason, decision.meldkamer_code, decision.caller) == (
        "national_fallback", "MN", None)
    assert decision.detail == (
        "no usable action or location; national fallback MN; caller number withheld; "
        "keyed input ignored: postcode '12*#' has 2 digits, not 4")


def test_an_unknown_caller_and_an_unknown_postcode_are_both_named(db: Session) -> None:
    decision = _route(db, caller="+14155552671", postcode="1004#")
    assert decision.reason == "national_fallback" and decision.caller == "+14155552671"
    assert "caller is not a registered participant" in decision.detail
    assert "postcode 1004 is not a known PC4 area" in decision.detail


def test_a_keyed_postcode_reaches_its_region(db: Session) -> None:
    decision = _route(db, caller="Restricted", postcode="3441#")
    assert (decision.reason, decision.meldkamer_code) == ("postcode", "MN")
    assert decision.detail.startswith("keyed postcode 3441 lies in Woerden (region Utrecht)")


def test_the_pidf_lo_of_a_multipart_invite_body_routes_the_call(db: Session) -> None:
    decision = _route(db, caller="anonymous", pidf=(DATA / "multipart.txt").read_bytes(),
                      content_type=MULTIPART, geolocation_header=CID, postcode="3441")
    assert (decision.reason, decision.meldkamer_code) == ("pidf", "RT")
    assert decision.detail.startswith("PIDF-LO Point (51.922, 4.479) lies in Rotterdam")


def test_a_civic_address_routes_by_its_postcode(db: Session) -> None:
    decision = _route(db, pidf=(DATA / "civic.xml").read_text(),
                      content_type="application/pidf+xml")
    assert (decision.reason, decision.meldkamer_code) == ("pidf", "DH")
    assert "civic postcode 2611" in decision.detail


def test_a_foreign_civic_address_is_named_and_skipped(db: Session) -> None:
    decision = _route(db, pidf=(DATA / "civic_belgium.xml").read_bytes(), postcode="6211")
    assert (decision.reason, decision.meldkamer_code) == ("postcode", "LB")
    assert "PIDF-LO civic postcode '2000' is in BE, not the Netherlands" in decision.detail


@pytest.mark.parametrize(("name", "note"), [
    ("malformed.xml", "malformed PIDF-LO ignored (not well-formed XML: mismatched tag"),
    ("doctype.xml", "malformed PIDF-LO ignored (XML with a DOCTYPE is refused"),
])
def test_a_bad_pidf_lo_is_named_and_the_next_hint_used(db: Session, name: str,
                                                       note: str) -> None:
    decision = _route(db, pidf=(DATA / name).read_bytes(), postcode="2611")
    assert (decision.reason, decision.meldkamer_code) == ("postcode", "DH")
    assert note in decision.detail


def test_a_location_by_reference_is_named_as_unusable(db: Session) -> None:
    decision = _route(db, geolocation_header="<https://lis.example.com/loc/7f3a>",
                      pidf=b"v=0\r\n", content_type="application/sdp")
    assert decision.reason == "national_fallback"
    assert ("location by reference <https://lis.example.com/loc/7f3a> cannot be "
            "dereferenced") in decision.detail


def test_a_multipart_body_with_a_non_ascii_header_byte_is_noted_and_the_call_routed(
        db: Session) -> None:
    body = (DATA / "multipart.txt").read_bytes().replace(b"Content-ID: <", b"Content-ID:\x80 <")
    decision = _route(db, pidf=body, content_type=MULTIPART, geolocation_header=CID,
                      postcode="2611")
    assert (decision.reason, decision.meldkamer_code) == ("postcode", "DH")
    assert any("no body part has that Content-ID" in note for note in decision.notes)


def test_coordinates_two_km_inside_belgium_reach_limburg(db: Session) -> None:
    decision = _route(db, lat=50.735, lon=5.695)
    assert (decision.reason, decision.meldkamer_code) == ("coordinates", "LB")
    assert "km outside Eijsden-Margraten (region Zuid-Limburg)" in decision.detail


def test_unusable_coordinates_are_named(db: Session) -> None:
    decision = _route(db, lat=40.7, lon=-74.0, postcode="3441")
    assert decision.reason == "postcode"
    assert "coordinates ignored: point (40.7, -74.0) lies outside Europe" in decision.detail
    assert "a latitude and a longitude are both needed" in _route(db, lat=52.0).detail


def test_registered_places_in_order_current_home_work(db: Session, participant) -> None:
    person = participant()
    add_location_by_postcode(db, person, LocationKind.WORK, "9711")
    assert _route(db, caller="+31690001234").detail.startswith(
        f"participant {person.id}'s work location lies in Groningen")
    add_location_by_postcode(db, person, LocationKind.HOME, "2611")
    decision = _route(db, caller="+31690001234")
    assert (decision.reason, decision.meldkamer_code) == ("participant_location", "DH")
    add_location(db, person, LocationKind.CURRENT, lat=52.3728, lon=4.8936,
                 now=NOW - timedelta(hours=1), expires_at=NOW + timedelta(hours=3))
    assert _route(db, caller="+31690001234").meldkamer_code == "AM"


def test_an_expired_current_place_is_skipped(db: Session, participant) -> None:
    person = participant()
    add_location(db, person, LocationKind.CURRENT, lat=52.3728, lon=4.8936,
                 now=NOW - timedelta(days=2), expires_at=NOW - timedelta(days=1))
    add_location_by_postcode(db, person, LocationKind.HOME, "2611")
    decision = _route(db, caller="+31690001234")
    assert decision.meldkamer_code == "DH"
    assert f"participant {person.id}'s current location expired" in decision.detail


def test_a_foreign_registered_place_near_the_border_counts(db: Session, participant) -> None:
    person = participant()
    add_location(db, person, LocationKind.HOME, lat=51.447, lon=5.040, country="BE", now=NOW)
    decision = _route(db, caller="+31690001234")
    assert (decision.reason, decision.meldkamer_code) == ("participant_location", "ZWB")
    assert "outside Baarle-Nassau" in decision.detail


def test_the_location_sent_with_the_call_beats_the_registered_one(db: Session,
                                                                  participant) -> None:
    add_location_by_postcode(db, participant(), LocationKind.HOME, "2611")
    decision = _route(db, caller="+31690001234", pidf=(DATA / "circle.xml").read_bytes())
    assert (decision.reason, decision.meldkamer_code) == ("pidf", "AM")


def test_the_fallback_keeps_the_action_and_never_loops(db: Session, participant,
                                                      sent_action) -> None:
    person = participant()
    action = sent_action(person, "OB")
    first = _route(db, caller="+31690001234")
    second = fallback_for(db, first)
    assert second is not None
    assert (second.meldkamer_code, second.reason, second.action_id, second.participant_id,
            second.caller) == ("LB", "fallback", action.id, person.id, "+31690001234")
    assert second.detail.startswith("OB busy or not answering; its fallback LB takes the call")
    assert fallback_for(db, second, tried={"OB"}) is None
    assert fallback_for(db, "MN").meldkamer_code == "ON"
    assert fallback_for(db, "XX") is None


def test_a_national_fallback_missing_from_the_database_is_a_configuration_error(
        db: Session) -> None:
    with pytest.raises(ConfigError, match="national fallback 'XX' is not a meldkamer"):
        resolve(db, RouteRequest(), NOW, national_fallback="XX")


def test_a_routing_decision_takes_a_few_milliseconds(db: Session, participant,
                                                     sent_action) -> None:
    person = participant()
    add_location_by_postcode(db, person, LocationKind.HOME, "2611")
    sent_action(person, "OB", ended_ago=timedelta(days=3), sent_ago=timedelta(days=3))
    request = RouteRequest(caller="+31690001234", lat=50.735, lon=5.695)
    resolve(db, request, NOW, national_fallback="MN")
    assert seconds_per_call(lambda: resolve(db, request, NOW, national_fallback="MN"),
                            10) < 0.02


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(caller=st.one_of(st.none(), st.text(max_size=40)),
       postcode=st.one_of(st.none(), st.text(max_size=12)),
       lat=st.one_of(st.none(), st.floats()), lon=st.one_of(st.none(), st.floats()),
       pidf=st.one_of(st.none(), st.text(max_size=200), st.binary(max_size=200)),
       content_type=st.sampled_from([None, MULTIPART, "application/pidf+xml", "x/\r\ny"]),
       header=st.one_of(st.none(), st.text(max_size=40)))
def test_resolve_never_raises_on_bad_input(db: Session, caller, postcode, lat, lon, pidf,
                                           content_type, header) -> None:
    decision = resolve(db, RouteRequest(caller=caller, postcode=postcode, lat=lat, lon=lon,
                                        pidf=pidf, content_type=content_type,
                                        geolocation_header=header),
                       NOW, national_fallback="MN")
    assert decision.reason in REASONS and decision.meldkamer_code and decision.detail


def test_recent_action_gives_the_action_id_for_sms_replies(db: Session, participant,
                                                          sent_action) -> None:
    person = participant()
    assert recent_action(db, person.id, NOW) is None
    action = sent_action(person, "OB", ended_ago=timedelta(hours=1))
    assert recent_action(db, person.id, NOW) == action.id
    assert recent_action(db, person.id, NOW, timedelta(minutes=30)) is None


def test_a_place_registered_by_coordinates_routes_by_the_boundary_not_the_nearest_postcode(
        db: Session, participant) -> None:
    """In Landsmeer (Noord-Holland), 1.2 km from the border with Amsterdam, whose postcode 1035
    has the nearest point: the registered place is the point, so Noord-Holland takes the call."""
    person = participant()
    home = add_location(db, person, LocationKind.HOME, lat=52.42415, lon=4.90326, now=NOW)
    assert home.pc4 == "1035"
    decision = _route(db, caller="+31690001234")
    assert (decision.reason, decision.meldkamer_code) == ("participant_location", "NH")
    assert "lies in Landsmeer (region Zaanstreek-Waterland)" in decision.detail
