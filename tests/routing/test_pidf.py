import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.pidf import (
    GeolocationRef,
    Location,
    PidfError,
    location_from_body,
    parse_geolocation_header,
    parse_pidf,
)
from tests.routing.conftest import DATA

MULTIPART = "multipart/mixed; boundary=boundary1"
CID = "<cid:target123@burgernet.example>"


def _read(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_a_gml_point_gives_latitude_and_longitude() -> None:
    location = parse_pidf(_read("point.xml"))
    assert location == Location(lat=52.0907, lon=5.1214, shape="Point")


@pytest.mark.parametrize("srs", ["urn:ogc:def:crs:EPSG::4326", "urn:ogc:def:crs:EPSG:4326",
                                 "urn:ogc:def:crs:EPSG:6.6:4326", "EPSG:4326"])
def test_every_spelling_of_wgs84_is_understood(srs: str) -> None:
    """Including the URN without its version segment, as RFC 5222's Figure 15 writes it."""
    document = _read("point.xml").replace(b"urn:ogc:def:crs:EPSG::4326", srs.encode())
    assert srs.encode() in document
    assert parse_pidf(document) == Location(lat=52.0907, lon=5.1214, shape="Point")


def test_a_circle_gives_its_centre_and_radius() -> None:
    location = parse_pidf(_read("circle.xml").decode())
    assert location is not None
    assert (location.lat, location.lon, location.radius_m) == (52.3728, 4.8936, 850.0)
    assert location.shape == "Circle"


def test_a_polygon_gives_its_centroid() -> None:
    location = parse_pidf(_read("polygon.xml"))
    assert location is not None and location.shape == "Polygon"
    assert location.lat == pytest.approx(50.85) and location.lon == pytest.approx(5.69)


def test_a_dutch_civic_address_gives_its_pc4() -> None:
    location = parse_pidf(_read("civic.xml"))
    assert location is not None and not location.has_point
    assert (location.postcode, location.country, location.province, location.city) == (
        "2611", "NL", "Zuid-Holland", "Delft")


def test_a_foreign_postcode_is_not_read_as_a_dutch_one() -> None:
    location = parse_pidf(_read("civic_belgium.xml"))
    assert location is not None and location.postcode is None and location.country == "BE"
    assert "is in BE, not the Netherlands" in location.notes[0]


def test_the_pidf_part_of_a_multipart_invite_body_is_found_by_its_content_id() -> None:
    location = location_from_body(_read("multipart.txt"), MULTIPART, CID)
    assert location is not None and (location.lat, location.lon) == (51.9225, 4.4792)


def test_a_multipart_body_without_content_type_or_header_still_gives_its_pidf_part() -> None:
    location = location_from_body(_read("multipart.txt").decode())
    assert location is not None and location.lat == 51.9225


def test_a_cid_that_names_no_body_part_is_an_error() -> None:
    with pytest.raises(PidfError, match="no body part has that Content-ID"):
        location_from_body(_read("multipart.txt"), MULTIPART, "<cid:other@example>")


def test_a_body_that_does_not_match_its_boundary_is_an_error() -> None:
    with pytest.raises(PidfError, match="does not match boundary 'elsewhere'"):
        location_from_body(_read("multipart.txt"), "multipart/mixed; boundary=elsewhere", CID)


def test_an_sdp_only_body_has_no_location() -> None:
    assert location_from_body(b"v=0\r\ns=-\r\n", "application/sdp") is None
    assert location_from_body(None, None, CID) is None


def test_malformed_xml_says_where() -> None:
    with pytest.raises(PidfError, match=r"not well-formed XML: mismatched tag at line 12"):
        parse_pidf(_read("malformed.xml"))


def test_a_doctype_is_refused_before_any_entity_is_expanded() -> None:
    with pytest.raises(PidfError, match="DOCTYPE is refused"):
        parse_pidf(_read("doctype.xml"))


@pytest.mark.parametrize(("document", "message"), [
    ("<presence/>", "not a PIDF <presence>"),
    ('<p:presence xmlns:p="urn:ietf:params:xml:ns:pidf" xmlns:gp="urn:ietf:params:xml:ns:'
     'pidf:geopriv10" xmlns:gml="http://www.opengis.net/gml"><gp:location-info>'
     '<gml:Point srsName="urn:ogc:def:crs:EPSG::28992"><gml:pos>1 2</gml:pos></gml:Point>'
     "</gp:location-info></p:presence>", "only WGS84"),
    ('<p:presence xmlns:p="urn:ietf:params:xml:ns:pidf" xmlns:gp="urn:ietf:params:xml:ns:'
     'pidf:geopriv10" xmlns:gml="http://www.opengis.net/gml"><gp:location-info>'
     "<gml:Point><gml:pos>52.1 five</gml:pos></gml:Point></gp:location-info></p:presence>",
     "not a list of numbers"),
    ('<p:presence xmlns:p="urn:ietf:params:xml:ns:pidf" xmlns:gp="urn:ietf:params:xml:ns:'
     'pidf:geopriv10" xmlns:gml="http://www.opengis.net/gml"><gp:location-info>'
     "<gml:Point><gml:pos>152.1 5.1</gml:pos></gml:Point></gp:location-info></p:presence>",
     "is not a latitude and longitude"),
    ("x" * 70_000, "larger than"),
])
def test_unusable_documents_are_named(document: str, message: str) -> None:
    with pytest.raises(PidfError, match=message):
        parse_pidf(document)


def test_presence_without_a_location_is_none() -> None:
    assert parse_pidf('<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:a@b">'
                      '<tuple id="t"><status><basic>open</basic></status></tuple>'
                      "</presence>") is None


def test_the_geolocation_header_lists_its_uris() -> None:
    refs = parse_geolocation_header(
        "<cid:target123@burgernet.example>;inserted-by=sbc.example, "
        "<https://lis.example.com/loc/ABC>")
    assert refs == (GeolocationRef("cid:target123@burgernet.example"),
                    GeolocationRef("https://lis.example.com/loc/ABC"))
    assert refs[0].cid == "target123@burgernet.example" and refs[1].by_reference
    with pytest.raises(PidfError, match="has no <URI>"):
        parse_geolocation_header("cid:target123")


@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)), st.sampled_from(
    [None, MULTIPART, "application/pidf+xml", "multipart/mixed", "text/plain"]))
def test_arbitrary_bodies_give_a_location_none_or_pidf_error(body, content_type) -> None:
    try:
        result = location_from_body(body, content_type, CID)
    except PidfError:
        return
    assert result is None or isinstance(result, Location)
