"""Property tests of PIDF-LO reading: every shape of RFC 5491 in 2-D and 3-D, in each place a
document may hold it, with the whitespace and spellings senders use; and routing by a
PIDF-LO near and across the Dutch border, which must equal routing by its point."""

from __future__ import annotations

import math
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from routing.pidf import CA, CL, Location, PidfError, location_from_body, parse_pidf
from routing.resolve import REASONS, RouteRequest, resolve
from tests.routing.conftest import DATA, NOW

GML = "http://www.opengis.net/gml"
GS = "http://www.opengis.net/pidflo/1.0"
SRS = {2: ["urn:ogc:def:crs:EPSG::4326", "EPSG:4326", "urn:ogc:def:crs:EPSG:4326",
           "http://www.opengis.net/def/crs/EPSG/0/4326"],
       3: ["urn:ogc:def:crs:EPSG::4979", "urn:ogc:def:crs:EPSG:6.6:4979",
           "http://www.opengis.net/def/crs/EPSG/0/4979"]}
METRES = ' uom="urn:ogc:def:uom:EPSG::9001"'
DEGREES = ' uom="urn:ogc:def:uom:EPSG::9102"'
#: Places on or near the border: Zeeuws-Vlaanderen/Belgium, Baarle, Zuid-Limburg/Belgium and
#: Germany, the Achterhoek, Twente, the Dollard; and the North Sea off Zeeland.
BORDER = [(51.30, 3.80), (51.44, 4.93), (50.76, 5.69), (50.85, 6.02), (51.85, 6.70),
          (52.30, 7.05), (53.25, 7.20), (51.60, 3.40)]
ROUTE_SETTINGS = settings(max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture])

blanks = st.text(" \t\r\n", min_size=1, max_size=3)
lats = st.floats(50.6, 53.7, allow_nan=False)
lons = st.floats(3.2, 7.3, allow_nan=False)


@dataclass(frozen=True)
class Case:
    """A shape as XML and what reading it must give."""

    xml: str
    name: str
    lat: float
    lon: float
    radius_m: float | None = None
    band: tuple[float, float, float, float] | None = None  # inner, outer, start, opening


@st.composite
def positions(draw: st.DrawFn, dimension: int) -> tuple[float, float, str]:
    lat, lon = draw(lats), draw(lons)
    values = [repr(lat), repr(lon)] + ([repr(draw(st.floats(-50, 500)))] * (dimension == 3))
    text = draw(st.one_of(st.just(""), blanks)) + draw(blanks).join(values)
    return lat, lon, text + draw(st.one_of(st.just(""), blanks))


@st.composite
def centred(draw: st.DrawFn, dimension: int) -> Case:
    lat, lon, pos = draw(positions(dimension))
    srs = draw(st.sampled_from(SRS[dimension]))
    radius = draw(st.floats(0, 5000, allow_nan=False))
    extra = {
        "Circle": f"<gs:radius{METRES}>{radius!r}</gs:radius>",
        "Sphere": f"<gs:radius{METRES}>{radius!r}</gs:radius>",
        "Ellipse": f"<gs:semiMajorAxis{METRES}>900</gs:semiMajorAxis><gs:semiMinorAxis{METRES}>"
                   f"400</gs:semiMinorAxis><gs:orientation{DEGREES}>45</gs:orientation>",
        "Ellipsoid": f"<gs:semiMajorAxis{METRES}>9</gs:semiMajorAxis><gs:semiMinorAxis{METRES}>"
                     f"3</gs:semiMinorAxis><gs:verticalAxis{METRES}>20</gs:verticalAxis>"
                     f"<gs:orientation{DEGREES}>90</gs:orientation>",
        "Point": ""}
    name = draw(st.sampled_from(["Point", "Circle", "Ellipse"] if dimension == 2
                                else ["Point", "Sphere", "Ellipsoid"]))
    prefix = "gml" if name == "Point" else "gs"
    xml = (f'<{prefix}:{name} srsName="{srs}"><gml:pos>{pos}</gml:pos>{extra[name]}'
           f"</{prefix}:{name}>")
    return Case(xml, name, lat, lon, radius if name == "Circle" else None)


@st.composite
def arc_bands(draw: st.DrawFn) -> Case:
    lat, lon, pos = draw(positions(2))
    inner = draw(st.floats(0, 20000, allow_nan=False))
    outer = inner + draw(st.floats(1, 10000, allow_nan=False))
    start, opening = draw(st.floats(0, 359.9)), draw(st.floats(0.1, 360))
    xml = (f'<gs:ArcBand srsName="urn:ogc:def:crs:EPSG::4326"><gml:pos>{pos}</gml:pos>'
           f"<gs:innerRadius{METRES}>{inner!r}</gs:innerRadius><gs:outerRadius{METRES}>"
           f"{outer!r}</gs:outerRadius><gs:startAngle{DEGREES}>{start!r}</gs:startAngle>"
           f"<gs:openingAngle{DEGREES}>{opening!r}</gs:openingAngle></gs:ArcBand>")
    return Case(xml, "ArcBand", lat, lon, band=(inner, outer, start, opening))


@st.composite
def polygons(draw: st.DrawFn, dimension: int) -> Case:
    """A regular polygon (in degrees) around a centre, which is then its centroid."""
    lat, lon = draw(lats), draw(lons)
    sides, size = draw(st.integers(3, 8)), draw(st.floats(0.001, 0.05))
    turn = draw(st.floats(0, 2 * math.pi))
    corners = [(lat + size * math.sin(turn + 2 * math.pi * i / sides),
                lon + size * math.cos(turn + 2 * math.pi * i / sides)) for i in range(sides)]
    corners = (corners if draw(st.booleans()) else corners[::-1]) + corners[:1]
    height = [" 12.5"] if dimension == 3 else []
    rows = [" ".join([repr(a), repr(b), *height]) for a, b in corners]
    if draw(st.booleans()):
        marked = draw(st.sampled_from(["", f' srsDimension="{dimension}"']))
        ring = (f"<gml:posList{marked}>{draw(blanks)}"
                + draw(blanks).join(rows).replace(" ", draw(blanks)) + "</gml:posList>")
    else:
        ring = "".join(f"<gml:pos>{row}</gml:pos>{draw(blanks)}" for row in rows)
    polygon = f"<gml:Polygon{{srs}}><gml:exterior><gml:LinearRing>{ring}</gml:LinearRing>" \
              "</gml:exterior></gml:Polygon>"
    srs = f' srsName="{draw(st.sampled_from(SRS[dimension]))}"'
    if dimension == 3 and draw(st.booleans()):
        xml = (f"<gs:Prism{srs}><gs:base>{polygon.format(srs='')}</gs:base>"
               f"<gs:height{METRES}>3</gs:height></gs:Prism>")
        return Case(xml, "Prism", lat, lon)
    return Case(polygon.format(srs=srs), "Polygon", lat, lon)


shapes = st.one_of(centred(2), centred(3), arc_bands(), polygons(2), polygons(3))


@st.composite
def documents(draw: st.DrawFn, shape: st.SearchStrategy[Case] = shapes
              ) -> tuple[str, Case, str | None]:
    """A PIDF-LO with CASE in a tuple, device or person, maybe inside <gml:location>, maybe
    with a Dutch civic postcode in either civic namespace; and the PC4 it should give."""
    case = draw(shape)
    xml = f"<gml:location>{case.xml}</gml:location>" if draw(st.booleans()) else case.xml
    pc4 = None
    if draw(st.booleans()):
        pc4 = str(draw(st.integers(1000, 9999)))
        prefix = draw(st.sampled_from(["ca", "cl"]))
        xml += (f"<{prefix}:civicAddress><{prefix}:country>NL</{prefix}:country><{prefix}:PC>"
                f"{pc4}{draw(st.sampled_from(['', ' AB', 'xy']))}</{prefix}:PC>"
                f"</{prefix}:civicAddress>")
    geopriv = (f"<gp:geopriv><gp:location-info>{xml}</gp:location-info><gp:usage-rules/>"
               "<gp:method>GPS</gp:method></gp:geopriv>")
    holder = draw(st.sampled_from([f'<tuple id="t"><status>{geopriv}</status></tuple>',
                                   f'<dm:device id="d">{geopriv}</dm:device>',
                                   f'<dm:person id="p">{geopriv}</dm:person>']))
    space = draw(st.sampled_from(["", " "]))
    document = ('<?xml version="1.0" encoding="UTF-8"?>\n<presence xmlns="urn:ietf:params:xml:'
                'ns:pidf" xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10" xmlns:dm="urn:ietf:'
                f'params:xml:ns:pidf:data-model" xmlns:gml="{GML}" xmlns:gs="{GS}" xmlns:ca="'
                f'{space}{CA}" xmlns:cl="{space}{CL}" entity="pres:caller@burgernet.example">'
                f"{holder}</presence>")
    return document, case, pc4


def _distance_and_bearing(lat1: float, lon1: float, lat2: float,
                          lon2: float) -> tuple[float, float]:
    """Haversine distance in metres and initial bearing in degrees, computed independently."""
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    bearing = math.atan2(math.sin(dl) * math.cos(p2),
                         math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl))
    return 2 * 6_371_008.8 * math.asin(math.sqrt(a)), math.degrees(bearing) % 360


def _check_point(location: Location, case: Case) -> None:
    assert location.lat is not None and location.lon is not None
    if case.band is None and case.name not in ("Polygon", "Prism"):
        assert (location.lat, location.lon) == (case.lat, case.lon)
    elif case.band is None:
        assert math.isclose(location.lat, case.lat, abs_tol=1e-9)
        assert math.isclose(location.lon, case.lon, abs_tol=1e-9)
    else:
        inner, outer, start, opening = case.band
        distance, bearing = _distance_and_bearing(case.lat, case.lon, location.lat, location.lon)
        assert math.isclose(distance, (inner + outer) / 2, rel_tol=1e-6, abs_tol=0.01)
        if distance > 10:
            turned = (bearing - start - opening / 2 + 180) % 360 - 180
            assert abs(turned) < 1e-3


@settings(max_examples=300, deadline=None)
@given(documents())
def test_every_shape_in_every_form_gives_its_point(drawn: tuple[str, Case, str | None]) -> None:
    document, case, pc4 = drawn
    location = parse_pidf(document)
    assert location is not None and location.shape == case.name
    _check_point(location, case)
    assert location.radius_m == case.radius_m
    assert location.postcode == pc4
    assert parse_pidf(document.encode()) == location == parse_pidf(document)
    assert location_from_body(document, "application/pidf+xml") == location


@ROUTE_SETTINGS
@given(st.sampled_from(BORDER), st.floats(-0.08, 0.08), st.floats(-0.08, 0.08), st.data())
def test_a_pidf_lo_near_the_border_routes_as_its_point_does(
        db: Session, place: tuple[float, float], dlat: float, dlon: float,
        data: st.DataObject) -> None:
    lat, lon = place[0] + dlat, place[1] + dlon
    case = Case(f'<gml:Point srsName="EPSG:4326"><gml:pos>{lat!r} {lon!r}</gml:pos></gml:Point>',
                "Point", lat, lon)
    document, _, pc4 = data.draw(documents(st.one_of(st.just(case), shapes)))
    location = parse_pidf(document)
    assert location is not None and location.lat is not None and location.lon is not None
    by_pidf = resolve(db, RouteRequest(pidf=document.encode()), NOW, national_fallback="MN")
    by_point = resolve(db, RouteRequest(lat=location.lat, lon=location.lon), NOW,
                       national_fallback="MN")
    assert by_pidf == resolve(db, RouteRequest(pidf=document.encode()), NOW,
                              national_fallback="MN")
    if by_point.reason == "coordinates":
        assert (by_pidf.reason, by_pidf.meldkamer_code) == ("pidf", by_point.meldkamer_code)
    elif pc4 is None:
        assert by_pidf.reason != "pidf" and by_pidf.meldkamer_code == by_point.meldkamer_code


SAMPLES = sorted(p for p in (DATA / "pidf").rglob("*") if p.suffix in (".xml", ".txt"))


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    """A sample document with a slice cut out, replaced or repeated."""
    data = draw(st.sampled_from(SAMPLES)).read_bytes()
    start = draw(st.integers(0, len(data)))
    end = draw(st.integers(start, min(len(data), start + 40)))
    junk = draw(st.one_of(st.binary(max_size=12), st.sampled_from(
        [b"<", b">", b'"', b"-", b":", b"<gml:pos>", b"</gml:location>", b"\xef\xbb\xbf",
         b"&amp;", b"<!DOCTYPE x>", data[start:end] * 3])))
    return data[:start] + junk + data[end:]


@settings(max_examples=400, deadline=None)
@given(damaged(), st.sampled_from([None, "application/pidf+xml",
                                   "multipart/mixed; boundary=boundary1"]))
def test_damaged_documents_give_a_location_none_or_a_pidf_error(body: bytes,
                                                                content_type: str | None) -> None:
    try:
        first = location_from_body(body, content_type, "<cid:target123@atlanta.example.com>")
    except PidfError as exc:
        assert str(exc)
        return
    assert first is None or isinstance(first, Location)
    assert location_from_body(body, content_type, "<cid:target123@atlanta.example.com>") == first


@ROUTE_SETTINGS
@given(damaged(), st.sampled_from([None, "application/pidf+xml",
                                   "multipart/mixed; boundary=boundary1"]))
def test_resolve_routes_every_damaged_document(db: Session, body: bytes,
                                               content_type: str | None) -> None:
    decision = resolve(db, RouteRequest(pidf=body, content_type=content_type, postcode="3441",
                                        geolocation_header="<cid:target123@atlanta.example.com>"),
                       NOW, national_fallback="MN")
    assert decision.reason in REASONS and decision.meldkamer_code
