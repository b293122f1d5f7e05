"""POST /lost through the real app, with the RFC's own example requests (tests/web/lost_client):
every answer is valid against RFC 5222, and its mapping is what `burgernet route` says for
the same place."""

from __future__ import annotations

import base64
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
import redis
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.cli import Context
from core.settings import Settings
from outbound.runtime import Runtime
from routing.cli import route_command
from tests.web import lost_client as lost
from web import create_app

ROUTING = "https://burgernet.example.org/ns/lost-routing/1"
POLICE = "urn:service:sos.police"
SOURCE = "127.0.0.1"  # the host of the test settings' PUBLIC_URL


@pytest.fixture
def route(settings: Settings):
    """`burgernet route` with ARGS, as a dict of its output lines."""

    def invoke(*args: str) -> dict[str, str]:
        result = CliRunner().invoke(route_command, list(args), obj=Context(settings),
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return {line[:11].strip(): line[11:] for line in result.output.splitlines()}

    return invoke


def dutch(postcode: str | None, validate: bool = False) -> str:
    """Figure 3 (Figure 5 with VALIDATE) for an address in Woerden with POSTCODE."""
    return lost.find_service_civic(validate, country="NL", A1="Utrecht", A3="Woerden",
                                   A6="Rijnstraat", HNO="1", PC=postcode)


def assert_routed_like_the_cli(answer: lost.Answer, cli: dict[str, str]) -> None:
    """The one mapping's sip: and tel: URIs, meldkamer and name are what `burgernet route`
    printed for the same place ("meldkamer  MN (Meldkamer Midden-Nederland)")."""
    [mapping] = answer.mappings
    code, name = cli["meldkamer"].split(" ", 1)
    assert mapping.uris == [cli["SIP URI"], f"tel:{cli['phone']}"]
    assert answer.extension(ROUTING)["meldkamer"] == code
    assert mapping.display_names["nl"] == f"{name.strip('()')} (Burgernet)"


# --- findService ----------------------------------------------------------------------------

def test_a_point_in_utrecht_maps_to_meldkamer_midden_nederland(client: FlaskClient,
                                                               route) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    answer = lost.send(client, lost.find_service_point(52.0907, 5.1214))
    after = datetime.now(UTC)
    assert answer.kind == "findServiceResponse"
    [mapping] = answer.mappings
    assert mapping.uris == ["sip:+31690000103@127.0.0.1:5060", "tel:+31690000103"]
    assert (mapping.service, mapping.service_number) == (POLICE, "08000011")
    assert mapping.display_names == {
        "nl": "Meldkamer Midden-Nederland (Burgernet)",
        "en": "Meldkamer Midden-Nederland, regional dispatch centre (Burgernet)"}
    expires = datetime.fromisoformat(mapping.expires)
    assert mapping.expires.endswith("Z") and mapping.last_updated < before
    assert before + timedelta(hours=1) <= expires <= after + timedelta(hours=1)
    assert (mapping.source, len(mapping.source_id)) == (SOURCE, 32)
    assert (answer.path, answer.location_used, answer.warnings) == (
        [SOURCE], "6020688f1ce1896d", [])
    assert answer.extension(ROUTING) == {
        "reason": "coordinates", "meldkamer": "MN", "municipality": "Utrecht",
        "municipalityCode": "GM0344", "safetyRegion": "Utrecht",
        "{http://www.w3.org/XML/1998/namespace}lang": "en",
        "text": "Point (52.09070, 5.12140) lies in Utrecht (region Utrecht)"}
    assert_routed_like_the_cli(answer, route("--lat", "52.0907", "--lon", "5.1214"))


def test_a_circle_maps_by_its_centre(client: FlaskClient, route) -> None:
    answer = lost.send(client, lost.find_service_circle(52.3728, 4.8936, 850.24))
    assert answer.extension(ROUTING)["text"].startswith("Circle (52.37280, 4.89360) lies in "
                                                        "Amsterdam")
    assert_routed_like_the_cli(answer, route("--lat", "52.3728", "--lon", "4.8936"))


def test_the_same_meldkamer_gives_the_same_mapping_whatever_the_place(
        client: FlaskClient) -> None:
    utrecht = lost.send(client, lost.find_service_point(52.0907, 5.1214)).mappings[0]
    woerden = lost.send(client, dutch("3441")).mappings[0]
    delft = lost.send(client, dutch("2611")).mappings[0]
    assert utrecht.source_id == woerden.source_id != delft.source_id


@pytest.mark.parametrize(("postcode", "code"), [("3441 AB", "MN"), ("3441", "MN"),
                                               ("2611", "DH"), ("9711", "NN")])
def test_a_postcode_maps_to_its_meldkamer(client: FlaskClient, route, postcode: str,
                                          code: str) -> None:
    answer = lost.send(client, dutch(postcode))
    reason = answer.extension(ROUTING)
    assert (reason["reason"], reason["meldkamer"], reason["postcode"]) == (
        "postcode", code, postcode[:4])
    assert answer.location_used == "627b8bf819d0bad4d"
    assert_routed_like_the_cli(answer, route("--postcode", postcode))


def test_address_validation_names_the_elements_that_decided(client: FlaskClient) -> None:
    answer = lost.send(client, dutch("3441 AB", validate=True))
    assert answer.xpath("string(lost:locationValidation/lost:valid)") == "country PC"
    assert answer.xpath("string(lost:locationValidation/lost:unchecked)") == "A1 A3 A6 HNO"
    assert answer.xpath("lost:locationValidation/lost:invalid") == []


def test_a_point_just_across_the_border_counts_for_the_nearest_municipality(
        client: FlaskClient, route) -> None:
    answer = lost.send(client, lost.find_service_point(50.735, 5.695))
    cli = route("--lat", "50.735", "--lon", "5.695")
    assert cli["reason"] == "coordinates"
    assert_routed_like_the_cli(answer, cli)
    [(kind, message)] = answer.warnings
    assert kind == "defaultMappingReturned"
    assert message.endswith("km outside Eijsden-Margraten (region Zuid-Limburg), the nearest "
                            "municipality")
    assert float(answer.extension(ROUTING)["distance"]) > 0


def test_a_point_far_outside_the_netherlands_is_not_found(client: FlaskClient, route) -> None:
    answer = lost.send(client, lost.find_service_point(48.8566, 2.3522))
    assert answer.error == ("notFound", "no Dutch meldkamer for Point (48.85660, 2.35220): "
                            "coordinates ignored: point (48.8566, 2.3522) lies more than 25 km "
                            "from every Dutch municipality")
    assert route("--lat", "48.8566", "--lon", "2.3522")["reason"] == "national_fallback"


@pytest.mark.parametrize(("country", "postcode", "error", "words"), [
    ("BE", "2000", "notFound", "a civic address in BE lies outside the Netherlands"),
    ("NL", "7999", "notFound", "postcode 7999 is not a known PC4 area"),
    ("NL", None, "notFound", "the civic address has no postcode (PC)"),
    ("NL", "12", "locationInvalid", "has 2 digits, not 4"),
    ("NL", "0123 AB", "locationInvalid", "starts with 0"),
])
def test_a_civic_address_without_a_dutch_postcode_is_an_error(
        client: FlaskClient, country: str, postcode: str | None, error: str,
        words: str) -> None:
    document = lost.find_service_civic(country=country, PC=postcode)
    assert lost.send(client, document).error[0] == error
    assert words in lost.send(client, document).error[1]


@pytest.mark.parametrize("service", ["urn:service:sos", "urn:service:sos.fire",
                                     "urn:service:counseling", "urn:service:sos.police.x"])
def test_a_service_we_do_not_map_is_not_implemented(client: FlaskClient, service: str) -> None:
    kind, message = lost.send(client, lost.find_service_point(52.0907, 5.1214, service)).error
    assert kind == "serviceNotImplemented" and service in message


def test_the_service_urn_is_compared_without_case(client: FlaskClient) -> None:
    answer = lost.send(client, lost.find_service_point(52.0907, 5.1214, "URN:Service:SOS.Police"))
    assert answer.mappings[0].service == "URN:Service:SOS.Police"


def test_the_first_location_in_a_profile_we_read_is_used(client: FlaskClient) -> None:
    answer = lost.send(client, lost.baseline_profiles(51.4416, 5.4697))
    assert (answer.location_used, answer.extension(ROUTING)["meldkamer"]) == ("DEF 345", "OB")


def test_only_unknown_profiles_are_named_in_the_error(client: FlaskClient) -> None:
    document = lost.baseline_profiles(51.4416, 5.4697).replace(
        'profile="geodetic-2d"', 'profile="geodetic-3d"')
    answer = lost.send(client, document)
    assert answer.error[0] == "locationProfileUnrecognized"
    assert answer.xpath("string(*/@unsupportedProfiles)") == (
        "not-yet-standardized-prism-profile geodetic-3d")


def test_a_location_without_profile_is_read_by_its_content(client: FlaskClient) -> None:
    document = lost.find_service_point(52.0907, 5.1214).replace(' profile="geodetic-2d"', "")
    assert lost.send(client, document).extension(ROUTING)["municipality"] == "Utrecht"


@pytest.mark.parametrize(("change", "error", "words"), [
    (("52.0907 5.1214", "95.0 5.1214"), "locationInvalid", "is not a latitude and longitude"),
    (("52.0907 5.1214", "52.0907"), "locationInvalid", "gml:pos has 1 numbers"),
    (("52.0907 5.1214", "north east"), "locationInvalid", "is not a list of numbers"),
    (("EPSG::4326", "EPSG::28992"), "locationInvalid", "is not WGS84"),
    (("p2:Point", "p2:LineString"), "locationInvalid", "is not a geodetic-2d shape"),
])
def test_a_bad_point_is_the_rfc_error_for_it(client: FlaskClient, change, error: str,
                                              words: str) -> None:
    document = lost.find_service_point(52.0907, 5.1214).replace(*change)
    kind, message = lost.send(client, document).error
    assert kind == error and words in message


def _with_path(*sources: str) -> str:
    vias = "".join(f'<via source="{source}"/>' for source in sources)
    return lost.find_service_point(52.0907, 5.1214).replace(
        f"<service>{POLICE}</service>", f"<service>{POLICE}</service><path>{vias}</path>")


def test_a_request_that_went_through_us_before_is_a_loop(client: FlaskClient) -> None:
    assert lost.send(client, _with_path("esrp.example", SOURCE)).error == (
        "loop", f"{SOURCE} is already in the request's <path>")


def test_the_path_of_the_request_is_kept_and_we_are_added(client: FlaskClient) -> None:
    assert lost.send(client, _with_path("esrp.example")).path == ["esrp.example", SOURCE]


# --- the other requests ---------------------------------------------------------------------

@pytest.mark.parametrize(("service", "listed"), [
    ("urn:service:sos", [POLICE]), (None, [POLICE]), (POLICE, [])])
def test_list_services_names_the_urns_we_map(client: FlaskClient, service: str | None,
                                             listed: list[str]) -> None:
    answer = lost.send(client, lost.list_services(service))
    assert (answer.kind, answer.services, answer.path) == (
        "listServicesResponse", listed, [SOURCE])


def test_list_services_for_another_tree_is_not_implemented(client: FlaskClient) -> None:
    answer = lost.send(client, lost.list_services("urn:service:counseling"))
    assert answer.error[0] == "serviceNotImplemented"


def test_list_services_by_location(client: FlaskClient) -> None:
    answer = lost.send(client, lost.list_services_by_location(53.2194, 6.5665))
    assert (answer.kind, answer.services, answer.location_used) == (
        "listServicesByLocationResponse", [POLICE], "3e19dfb3b9828c3")
    australia = lost.send(client, lost.figure(13))
    assert australia.error[0] == "notFound"


def test_no_service_boundary_is_handed_out(client: FlaskClient) -> None:
    assert lost.send(client, lost.figure(9)).error[0] == "notFound"


# --- bad requests ---------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "content_type", "words"), [
    (b"<findService", lost.MEDIA_TYPE, "not well-formed XML"),
    (b"\xff\xfe\x00garbage", lost.MEDIA_TYPE, "not well-formed XML"),
    (b"", lost.MEDIA_TYPE, "not well-formed XML"),
    (lost.figure(1).encode(), "application/xml", "Content-Type must be application/lost+xml"),
    (lost.figure(1).encode(), "text/plain", "not text/plain"),
    (b'<presence xmlns="urn:ietf:params:xml:ns:pidf"/>', lost.MEDIA_TYPE,
     "not in the LoST namespace"),
    (b'<findService xmlns="urn:ietf:params:xml:ns:lost1"><service>x</service></findService>',
     lost.MEDIA_TYPE, "not valid against the RFC 5222 schema"),
    (lost.figure(2).encode(), lost.MEDIA_TYPE, "is an answer, not a request"),
    (('<!DOCTYPE listServices [<!ENTITY e "x">]>' + lost.figure(11).split("?>", 1)[1]).encode(),
     lost.MEDIA_TYPE, "DOCTYPE is refused"),
    (lost.figure(11).encode() + b" " * 70_000, lost.MEDIA_TYPE, "larger than"),
])
def test_a_bad_request_is_a_bad_request_error(client: FlaskClient, body: bytes,
                                              content_type: str, words: str) -> None:
    kind, message = lost.send(client, body, content_type).error
    assert kind == "badRequest" and words in message, message


def test_utf16_requests_are_understood(client: FlaskClient) -> None:
    document = lost.find_service_point(52.0907, 5.1214).replace('encoding="UTF-8"',
                                                                 'encoding="UTF-16"')
    answer = lost.send(client, document.encode("utf-16"))
    assert answer.extension(ROUTING)["meldkamer"] == "MN"


def test_only_post_is_lost(client: FlaskClient) -> None:
    assert client.get("/lost").status_code == 405


def test_a_broken_configuration_is_an_internal_error(
        settings: Settings, engine: Engine, sessions: sessionmaker[Session],
        redis_client: redis.Redis, tmp_path) -> None:
    broken = dataclasses.replace(settings, meldkamer_config=tmp_path / "missing.toml")
    app = create_app(runtime=Runtime(broken, engine, sessions, redis_client))
    answer = lost.send(app.test_client(), lost.find_service_point(52.0907, 5.1214))
    assert answer.error == ("internalError", "the server could not answer; the cause is in "
                                             "its log")


# --- authentication -------------------------------------------------------------------------

@pytest.fixture
def guarded(settings: Settings, engine: Engine, sessions: sessionmaker[Session],
            redis_client: redis.Redis) -> FlaskClient:
    restricted = dataclasses.replace(settings, lost_credentials="esrp:s3cret:with-colon")
    return create_app(runtime=Runtime(restricted, engine, sessions, redis_client)).test_client()


def _basic(credentials: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


def test_with_credentials_configured_only_clients_that_send_them_are_answered(
        guarded: FlaskClient) -> None:
    document = lost.list_services()
    for headers in ({}, _basic("esrp:wrong"), {"Authorization": "Bearer s3cret"},
                    {"Authorization": "Basic !!!"}):
        response = guarded.post("/lost", data=document, content_type=lost.MEDIA_TYPE,
                                headers=headers)
        assert response.status_code == 401 and b"lost1" not in response.data
        assert response.headers["WWW-Authenticate"].startswith('Basic realm="lost"')
    answer = lost.send(guarded, document, **_basic("esrp:s3cret:with-colon"))
    assert answer.services == [POLICE]


def test_a_client_guessing_credentials_is_stopped_for_a_minute(guarded: FlaskClient) -> None:
    statuses = [guarded.post("/lost", data=lost.list_services(), content_type=lost.MEDIA_TYPE,
                             headers=_basic(f"esrp:guess{n}")).status_code for n in range(21)]
    assert statuses == [401] * 20 + [429]
    response = guarded.post("/lost", data=lost.list_services(), content_type=lost.MEDIA_TYPE,
                            headers=_basic("esrp:s3cret:with-colon"))
    assert response.status_code == 429 and response.headers["Retry-After"] == "60"
