"""The PIDF-LO examples of RFC 4119, RFC 5491 and RFC 6442 as published, and documents as
equipment in the field sends them (tests/routing/data/pidf/README.md names each source)."""

import pytest
from sqlalchemy.orm import Session

from routing.pidf import Location, location_from_body, parse_pidf
from routing.resolve import RouteRequest, resolve
from tests.routing.conftest import DATA, NOW

PIDF = DATA / "pidf"
#: RFC 4119's San Francisco, 37:46:30N 122:25:10W.
SAN_FRANCISCO = (37 + 46 / 60 + 30 / 3600, -(122 + 25 / 60 + 10 / 3600))
US_CIVIC = Location(country="US", province="New York", city="New York",
                    notes=("civic postcode '10027-0401' is in US, not the Netherlands",))


def _invite(name: str) -> tuple[str, bytes, str]:
    """The Content-Type, body and Geolocation header of an INVITE printed in an RFC."""
    head, body = (PIDF / name).read_bytes().split(b"\n\n", 1)
    headers = dict(line.split(": ", 1) for line in head.decode().splitlines()[1:])
    return headers["Content-Type"], body, headers["Geolocation"]


def _at(location: Location | None) -> tuple[float, float]:
    assert location is not None and location.lat is not None and location.lon is not None
    return location.lat, location.lon


@pytest.mark.parametrize(("name", "shape", "point"), [
    ("rfc4119-2.3-geodetic.xml", "Point", SAN_FRANCISCO),
    ("rfc5491-fig04-point-2d.xml", "Point", (-34.407, 150.883)),
    ("rfc5491-fig05-point-3d.xml", "Point", (-34.407, 150.883)),
    ("rfc5491-fig07-polygon-pos.xml", "Polygon", (43.269333, -73.272)),
    ("rfc5491-fig08-polygon-poslist.xml", "Polygon", (43.269333, -73.272)),
    ("rfc5491-fig09-circle.xml", "Circle", (42.5463, -73.2512)),
    ("rfc5491-fig10-ellipse.xml", "Ellipse", (42.5463, -73.2512)),
    ("rfc5491-fig13-sphere.xml", "Sphere", (42.5463, -73.2512)),
    ("rfc5491-fig15-ellipsoid.xml", "Ellipsoid", (42.5463, -73.2512)),
    ("rfc5491-fig17-prism.xml", "Prism", (42.606844, -73.298157)),
    ("rfc6442-5.1-pidf.xml", "Point", (32.86726, -97.16054)),
])
def test_each_geodetic_example_gives_its_point(name: str, shape: str,
                                               point: tuple[float, float]) -> None:
    location = parse_pidf((PIDF / name).read_bytes())
    assert location is not None and location.shape == shape
    assert _at(location) == pytest.approx(point, abs=1e-6)


def test_the_circle_keeps_its_radius() -> None:
    location = parse_pidf((PIDF / "rfc5491-fig09-circle.xml").read_bytes())
    assert location is not None and location.radius_m == 850.24


def test_an_arc_band_is_placed_in_its_band_not_at_the_tower() -> None:
    """RFC 5491, Section 5.2.5: the centre "is not included in resulting enclosed area". The
    band of Figure 12 runs 3594-4148 m from the tower, bearing 20-40 degrees: its middle is
    3871 m at 30 degrees, about 0.0301 degrees north and 0.0240 east of the tower."""
    location = parse_pidf((PIDF / "rfc5491-fig12-arcband.xml").read_bytes())
    assert location is not None and location.shape == "ArcBand"
    assert _at(location) == pytest.approx((-43.5723 + 0.03015, 153.2176 + 0.02404), abs=2e-4)


@pytest.mark.parametrize("name", ["rfc4119-2.3-civic.xml", "rfc4119-2.3-civic-fixed.xml"])
def test_the_rfc_4119_civic_address_is_read_as_printed_and_as_fixed(name: str) -> None:
    assert parse_pidf((PIDF / name).read_bytes()) == US_CIVIC


def test_a_compound_location_gives_the_point_and_the_civic_floor() -> None:
    location = parse_pidf((PIDF / "rfc5491-fig02-compound.xml").read_bytes())
    assert location == Location(lat=-43.5723, lon=153.2176, shape="Point")


def test_the_device_location_comes_before_the_persons() -> None:
    """RFC 5491 Rule 8: the first <device> with a location first, then <tuple>, <person> last;
    Figure 3's person circle does not mix with its device's civic address."""
    location = parse_pidf((PIDF / "rfc5491-fig03-multiple.xml").read_bytes())
    assert location == Location(country="AU", province="NSW", city="Wollongong",
                                notes=("civic postcode '2500' is in AU, not the Netherlands",))


def test_the_rfc_6442_composed_location_gives_the_devices_point() -> None:
    location = parse_pidf((PIDF / "rfc6442-5.2-pidf.xml").read_bytes())
    assert location == Location(lat=32.86726, lon=-97.16054, shape="Point")


@pytest.mark.parametrize("name", ["rfc6442-5.1-invite.txt", "rfc6442-5.1-invite-fixed.txt",
                                  "rfc6442-5.2-invite.txt", "rfc6442-5.2-invite-fixed.txt"])
def test_the_rfc_6442_invites_give_their_pidf_part_as_printed_and_as_fixed(name: str) -> None:
    content_type, body, header = _invite(name)
    assert header == "<cid:target123@atlanta.example.com>"
    location = location_from_body(body, content_type, header)
    assert location == Location(lat=32.86726, lon=-97.16054, shape="Point")


def test_an_invite_laid_out_as_rfc_6442_prints_it_routes_by_its_location(db: Session) -> None:
    """Section 5.2's INVITE as printed, with the point moved to Rotterdam."""
    content_type, body, header = _invite("rfc6442-5.2-invite.txt")
    body = body.replace(b"32.86726 -97.16054", b"51.9225 4.4792")
    decision = resolve(db, RouteRequest(pidf=body, content_type=content_type,
                                        geolocation_header=header), NOW,
                       national_fallback="MN")
    assert (decision.reason, decision.meldkamer_code) == ("pidf", "RT"), decision.notes


@pytest.mark.parametrize(("name", "expected"), [
    ("cisco-cucm-214291.xml", Location(country="US", province="TEX", city="SAN")),
    ("constructed-device-confidence.xml", Location(lat=52.0907, lon=5.1214, radius_m=150.0,
                                                   shape="Circle")),
    ("constructed-two-location-infos.xml", Location(lat=51.9225, lon=4.4792, shape="Point")),
    ("constructed-circle-foreign-civic.xml", Location(
        lat=51.2194, lon=4.4025, radius_m=30.0, shape="Circle", country="BE",
        province="Antwerpen", city="Antwerpen",
        notes=("civic postcode '2000' is in BE, not the Netherlands",))),
])
def test_documents_from_the_field_are_read(name: str, expected: Location) -> None:
    assert parse_pidf((PIDF / "field" / name).read_bytes()) == expected


def test_a_multipart_body_from_the_field_gives_its_pidf_part() -> None:
    body = (PIDF / "field" / "constructed-multipart-crlf.txt").read_bytes()
    location = location_from_body(body, "multipart/mixed; boundary=unique-boundary-1",
                                  "<cid:Loc7Hx2q@ims.example.nl>")
    assert location == Location(lat=51.4416, lon=5.4697, radius_m=25.0, shape="Circle")
    assert location_from_body(body) == location
