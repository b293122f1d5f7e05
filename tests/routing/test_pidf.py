import pytest
import shapely
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
                                 "urn:ogc:def:crs:EPSG:6.6:4326", "EPSG:4326", "epsg:4326",
                                 "urn:x-ogc:def:crs:EPSG:4326",
                                 "http://www.opengis.net/def/crs/EPSG/0/4326",
                                 "https://www.opengis.net/def/crs/EPSG/0/4979",
                                 " urn:ogc:def:crs:EPSG::4326 "])
def test_every_spelling_of_wgs84_is_understood(srs: str) -> None:
    """Including the URN without its version segment, as RFC 5222's Figure 15 writes it, the
    lower case of RFC 4119, and the OGC's http URI."""
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


POINT = ('<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:gp="urn:ietf:params:xml:ns:pidf:'
         'geopriv10" xmlns:gml="{gml}"><tuple id="t"><status><gp:geopriv><gp:location-info>'
         '<gml:Point srsName="urn:ogc:def:crs:EPSG::4326"><gml:pos>52.0907 5.1214</gml:pos>'
         "</gml:Point></gp:location-info></gp:geopriv></status></tuple></presence>")
CIVIC_IN = ('<?xml version="1.0" encoding="ISO-8859-1"?>\n<presence xmlns="urn:ietf:params:xml:ns'
            ':pidf" xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10" xmlns:ca="urn:ietf:params:'
            'xml:ns:pidf:geopriv10:civicAddr"><tuple id="t"><status><gp:geopriv><gp:location-info>'
            "<ca:civicAddress><ca:country>NL</ca:country><ca:A1>Frysl\u00e2n</ca:A1>"
            "<ca:A2>S\u00fadwest-Frysl\u00e2n</ca:A2></ca:civicAddress></gp:location-info>"
            "</gp:geopriv></status></tuple></presence>")
FRYSLAN = Location(country="NL", province="Frysl\u00e2n", city="S\u00fadwest-Frysl\u00e2n")


@pytest.mark.parametrize("gml", ["http://www.opengis.net/gml", "http://www.opengis.net/gml/3.2",
                                 "urn:opengis:specification:gml:schema-xsd:feature:v3.0",
                                 " http://www.opengis.net/gml "])
def test_the_gml_namespaces_of_rfc_4119_and_gml_3_2_are_read_as_gml(gml: str) -> None:
    assert parse_pidf(POINT.format(gml=gml)) == Location(lat=52.0907, lon=5.1214, shape="Point")


def test_a_document_given_as_text_is_read_as_that_text_whatever_it_declares() -> None:
    assert parse_pidf(CIVIC_IN) == FRYSLAN


@pytest.mark.parametrize("encoding", ["iso-8859-1", "utf-16", "utf-8-sig"])
def test_a_document_in_bytes_is_read_in_the_encoding_it_declares_or_marks(encoding: str) -> None:
    document = CIVIC_IN.replace("ISO-8859-1", encoding.removesuffix("-sig").upper())
    assert parse_pidf(document.encode(encoding)) == FRYSLAN


@pytest.mark.parametrize("body", [
    b"\xef\xbb\xbf" + CIVIC_IN.replace("ISO-8859-1", "UTF-8").encode(),
    CIVIC_IN.replace("ISO-8859-1", "UTF-16").encode("utf-16"),
    b"\r\n  " + CIVIC_IN.encode("iso-8859-1")])
def test_a_body_with_a_byte_order_mark_or_leading_blank_lines_is_still_pidf(body: bytes) -> None:
    assert location_from_body(body) == FRYSLAN


def test_a_lone_surrogate_is_a_pidf_error_not_an_encoding_crash() -> None:
    with pytest.raises(PidfError, match="not well-formed XML"):
        parse_pidf(CIVIC_IN.replace("Frysl\u00e2n</ca:A1>", "\ud800</ca:A1>"))
    with pytest.raises(PidfError, match="not well-formed XML"):
        location_from_body("<presence>\udfff</presence>", "application/pidf+xml")


def test_a_gml_2_polygon_with_outer_boundary_and_coordinates_is_read() -> None:
    document = _read("polygon.xml").replace(
        b"<gml:exterior>", b'<gml:outerBoundaryIs>').replace(
        b"</gml:exterior>", b"</gml:outerBoundaryIs>").replace(
        b"<gml:posList>", b'<gml:coordinates decimal="," cs=" " ts=";">').replace(
        b"</gml:posList>", b"</gml:coordinates>").replace(
        b"50.845 5.680 50.855 5.680 50.855 5.700 50.845 5.700 50.845 5.680",
        b"50,845 5,680;50,855 5,680;50,855 5,700;50,845 5,700;50,845 5,680")
    location = parse_pidf(document)
    assert location is not None and location.shape == "Polygon"
    assert (location.lat, location.lon) == pytest.approx((50.85, 5.69))


@pytest.mark.parametrize(("text", "point"), [
    ("37:46:30N 122:25:10W", (37.775, -122.419444)),
    ("122:25:10W 37:46:30N", (37.775, -122.419444)),
    ("52:05:26.5 5:07:17", (52.090694, 5.121389)),
    ("-33.5,151.25", (-33.5, 151.25)),
    ("52.0907, 5.1214", (52.0907, 5.1214)),
])
def test_gml_coordinates_are_read_in_degrees_or_d_m_s(text: str,
                                                      point: tuple[float, float]) -> None:
    document = _read("point.xml").replace(
        b"<gml:pos>52.0907 5.1214</gml:pos>", f"<gml:coordinates>{text}</gml:coordinates>".encode())
    location = parse_pidf(document)
    assert location is not None and (location.lat, location.lon) == pytest.approx(point, abs=1e-6)


@pytest.mark.parametrize("text", ["37:46:30N 122:25:10N", "37:61:00N 1:00:00E", "-37:46:30N 1 2",
                                  "abc def", "1,2,3,4", ""])
def test_unreadable_gml_coordinates_are_named(text: str) -> None:
    document = _read("point.xml").replace(
        b"<gml:pos>52.0907 5.1214</gml:pos>", f"<gml:coordinates>{text}</gml:coordinates>".encode())
    with pytest.raises(PidfError, match="gml:coordinates"):
        parse_pidf(document)


def test_a_polygon_whose_centroid_lies_outside_it_is_placed_inside_it() -> None:
    """A U around a bay: the centroid falls in the bay, outside the polygon."""
    ring = ("50.80 5.60 50.90 5.60 50.90 5.80 50.80 5.80 50.80 5.78 50.88 5.78 50.88 5.62 "
            "50.80 5.62 50.80 5.60")
    document = _read("polygon.xml").replace(
        b"50.845 5.680 50.855 5.680 50.855 5.700 50.845 5.700 50.845 5.680", ring.encode())
    location = parse_pidf(document)
    assert location is not None and location.lat is not None and location.lon is not None
    values = [float(v) for v in ring.split()]
    area = shapely.Polygon(list(zip(values[1::2], values[::2], strict=True)))
    assert not area.contains(area.centroid)
    assert area.contains(shapely.Point(location.lon, location.lat))


def test_a_holder_that_cannot_be_read_is_passed_over_with_a_note() -> None:
    """RFC 5491 Rule 8 prefers the device; its point is in a CRS we do not read, so the tuple's
    civic address is used, and the trail says why."""
    document = CIVIC_IN.replace("<tuple id=\"t\">", '<dm:device xmlns:dm="urn:ietf:params:xml:ns:'
                                'pidf:data-model" xmlns:gml="http://www.opengis.net/gml" id="d">'
                                "<gp:geopriv><gp:location-info><gml:Point srsName=\"EPSG:28992\">"
                                "<gml:pos>1 2</gml:pos></gml:Point></gp:location-info>"
                                "</gp:geopriv></dm:device><tuple id=\"t\">")
    location = parse_pidf(document)
    assert location is not None and location.city == "S\u00fadwest-Frysl\u00e2n"
    assert location.notes[0].startswith("device 'd' ignored: Point uses coordinate reference")


def test_a_non_ascii_byte_in_a_part_header_is_a_pidf_error_not_a_crash() -> None:
    """compat32 gives such a header as an email.header.Header, which has no .strip()."""
    body = _read("multipart.txt").replace(b"Content-ID: <", b"Content-ID:\x80 <")
    assert body != _read("multipart.txt")
    with pytest.raises(PidfError, match="no body part has that Content-ID"):
        location_from_body(body, MULTIPART, CID)
