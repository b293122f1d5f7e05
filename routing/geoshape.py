"""The geodetic shapes of a location document, each read to the one point that routes it.

RFC 5491 (Section 5) allows GML 3.1.1's Point and Polygon and the GeoShape Circle, Ellipse,
ArcBand, Sphere, Ellipsoid and Prism, in WGS84: EPSG 4326 (latitude longitude) or 4979 (with a
height). What older and looser senders write is read too: RFC 4119's GML 3.0 namespace, a
shape inside a GML property such as <gml:location> (RFC 4119, RFC 6442), GML 2's
<gml:coordinates> with degrees, minutes and seconds and <gml:outerBoundaryIs>, and a 3-D
posList that leaves its dimension to the CRS. The point of an area is its centroid (a point
inside it where the centroid falls outside); that of an arc band the middle of the band, since
its centre, the cell tower, lies outside it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import shapely

from core.errors import BurgernetError

GML = "http://www.opengis.net/gml"
GS = "http://www.opengis.net/pidflo/1.0"
#: GML 3.0 as RFC 4119 names it, and GML 3.2: read as the GML 3.1.1 of RFC 5491.
GML_ALIASES = frozenset({"urn:opengis:specification:gml:schema-xsd:feature:v3.0",
                         "http://www.opengis.net/gml/3.2"})
#: WGS84 2D (4326) or 3D (4979, "lat lon height"), the two CRSs RFC 5491 allows, in the URN
#: (with or without its version segment, as RFC 5222's Figure 15 writes it, and the older
#: x-ogc form), the short "EPSG:4326" (RFC 4119 writes "epsg:4326") and the two URL forms.
WGS84 = re.compile(r"(?:urn:(?:x-)?ogc:def:crs:EPSG:(?:[0-9.]*:)?|EPSG:|"
                   r"http://www\.opengis\.net/gml/srs/epsg\.xml#|"
                   r"https?://www\.opengis\.net/def/crs/EPSG/0/)(4326|4979)", re.IGNORECASE)
DIMENSIONS = {"4326": 2, "4979": 3}
METRES = {"urn:ogc:def:uom:EPSG::9001", "m", "metre", "meter"}
DEGREES = {"urn:ogc:def:uom:EPSG::9102", "deg", "degree", "degrees"}
RADIANS = {"urn:ogc:def:uom:EPSG::9101", "rad", "radian", "radians"}
EARTH_RADIUS_M = 6_371_008.8
#: One value of <gml:coordinates>: decimal degrees or D:M:S, with a sign or a hemisphere.
DMS = re.compile(r"([+-]?)(\d+(?:\.\d*)?|\.\d+)(?::(\d+(?:\.\d*)?))?(?::(\d+(?:\.\d*)?))?"
                 r"([NSEW]?)", re.IGNORECASE)


class PidfError(BurgernetError, ValueError):
    """A location body or header that cannot be read; the message says what is wrong."""

    error_id = "malformed_pidf"


@dataclass(frozen=True)
class Shape:
    """A shape read to its point: NAME (its element's local name), LAT, LON, and RADIUS_M for a
    circle in metres."""

    name: str
    lat: float
    lon: float
    radius_m: float | None = None


def key(tag: Any) -> tuple[str, str]:
    """(namespace, local name) of a tag; the namespace trimmed (Cisco sends RFC 4119's
    " urn:...:civicLoc"), GML 3.0 and 3.2 as GML. A comment's tag (lxml) gives ("", "")."""
    if not isinstance(tag, str):
        return "", ""
    if not tag.startswith("{"):
        return "", tag
    namespace, _, local = tag[1:].partition("}")
    namespace = namespace.strip()
    return (GML if namespace in GML_ALIASES else namespace), local


def children(element: Any, name: tuple[str, str]) -> Iterator[Any]:
    return (child for child in element if key(child.tag) == name)


def child(element: Any, name: tuple[str, str]) -> Any | None:
    return next(children(element, name), None)


def read_shape(element: Any) -> Shape | None:
    """The shape ELEMENT is, read to its point; None when it is no shape. A GML property (a
    GML element named in lower case, such as <gml:location>) stands for the shape inside it."""
    name = key(element.tag)
    if name[0] == GML and name[1][:1].islower():
        element = next((c for c in element if key(c.tag) in READERS), None)
        if element is None:
            return None
        name = key(element.tag)
    reader = READERS.get(name)
    if reader is None:
        return None
    lat, lon = reader(element, _crs_dimension(element))
    radius = _radius(element) if name == (GS, "Circle") else None
    return Shape(name[1], lat, lon, radius)


def _crs_dimension(shape: Any) -> int | None:
    srs = shape.get("srsName")
    if srs is None:
        return None
    match = WGS84.fullmatch(srs.strip())
    if match is None:
        raise PidfError(f"{key(shape.tag)[1]} uses coordinate reference system {srs[:80]!r}; "
                        "only WGS84 (EPSG 4326 or 4979) is understood")
    return DIMENSIONS[match.group(1)]


def numbers(text: str | None, what: str) -> list[float]:
    try:
        values = [float(v) for v in (text or "").split()]
    except ValueError:
        raise PidfError(f"{what} {(text or '').strip()[:40]!r} is not a list of numbers") from None
    if not all(math.isfinite(v) for v in values):
        raise PidfError(f"{what} has a number that is not finite")
    return values


def lat_lon(lat: float, lon: float) -> tuple[float, float]:
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise PidfError(f"position ({lat}, {lon}) is not a latitude and longitude")
    return lat, lon


def _position(shape: Any, _dimension: int | None) -> tuple[float, float]:
    """The gml:pos (or GML 2 gml:coordinates) of a point or of a shape's centre."""
    for element in shape:
        name = key(element.tag)
        if name == (GML, "coordinates"):
            rows = coordinates(element)
            if len(rows) != 1:
                raise PidfError(f"gml:coordinates of {key(shape.tag)[1]} holds {len(rows)} "
                                "positions, not one")
            return rows[0]
        if name == (GML, "pos"):
            values = numbers(element.text, "gml:pos")
            if len(values) not in (2, 3):
                raise PidfError(f"gml:pos has {len(values)} numbers, not latitude longitude "
                                "[height]")
            return lat_lon(values[0], values[1])
    raise PidfError(f"{key(shape.tag)[1]} has no gml:pos")


def coordinates(element: Any) -> list[tuple[float, float]]:
    """The positions of a GML 2 <gml:coordinates>: tuples split by `ts`, values by `cs` (" " and
    "," unless the element says otherwise). Without a `cs` in it, the whole text is one position,
    as in RFC 4119's "37:46:30N 122:25:10W"."""
    decimal, cs, ts = (element.get(a, d) for a, d in (("decimal", "."), ("cs", ","), ("ts", " ")))
    if len({decimal, cs, ts}) != 3 or not all(len(c) == 1 for c in (decimal, cs, ts)):
        raise PidfError("gml:coordinates has unusable decimal, cs or ts attributes")
    text = (element.text or "").strip()
    if cs not in text:
        tuples = [text.split()]
    else:
        text = re.sub(rf"\s*{re.escape(cs)}\s*", cs, text)
        tuples = [t.split(cs) for t in (text.split() if ts.isspace() else text.split(ts)) if t]
    return [_coordinate_tuple(values, decimal) for values in tuples]


def _coordinate_tuple(values: list[str], decimal: str) -> tuple[float, float]:
    if len(values) not in (2, 3):
        raise PidfError(f"gml:coordinates position {' '.join(values)[:40]!r} is not latitude "
                        "longitude [height]")
    (first, first_axis), (second, second_axis) = (_coordinate(v, decimal) for v in values[:2])
    if first_axis == "lon" or second_axis == "lat":
        (first, first_axis), (second, second_axis) = (second, second_axis), (first, first_axis)
    if first_axis not in (None, "lat") or second_axis not in (None, "lon"):
        raise PidfError("gml:coordinates names two latitudes or two longitudes")
    return lat_lon(first, second)


def _coordinate(text: str, decimal: str) -> tuple[float, str | None]:
    """A value in degrees and the axis its hemisphere letter names (N/S "lat", E/W "lon")."""
    match = DMS.fullmatch(text.replace(decimal, ".") if decimal != "." else text)
    if match is None:
        raise PidfError(f"gml:coordinates value {text[:20]!r} is not a number or D:M:S")
    sign, degrees, minutes, seconds, hemisphere = match.groups()
    minutes_f, seconds_f = float(minutes or 0), float(seconds or 0)
    if minutes_f >= 60 or seconds_f >= 60 or (sign and hemisphere):
        raise PidfError(f"gml:coordinates value {text[:20]!r} is not a number or D:M:S")
    value = float(degrees) + minutes_f / 60 + seconds_f / 3600
    negative = sign == "-" or hemisphere.upper() in ("S", "W")
    axis = {"N": "lat", "S": "lat", "E": "lon", "W": "lon"}.get(hemisphere.upper())
    return (-value if negative else value), axis


def _measure(shape: Any, local: str, units: set[str], default: str) -> float:
    element = child(shape, (GS, local))
    if element is None:
        raise PidfError(f"gs:{key(shape.tag)[1]} has no gs:{local}")
    values = numbers(element.text, f"gs:{local}")
    if len(values) != 1 or (element.get("uom") or default) not in units:
        raise PidfError(f"gs:{local} must be one number in {default}")
    return values[0]


def _radius(shape: Any) -> float | None:
    element = child(shape, (GS, "radius"))
    if element is None:
        return None
    values = numbers(element.text, "gs:radius")
    if len(values) != 1 or values[0] < 0:
        raise PidfError("gs:radius must be one non-negative number")
    return values[0] if (element.get("uom") or "urn:ogc:def:uom:EPSG::9001") in METRES else None


def _angle(shape: Any, local: str) -> float:
    element = child(shape, (GS, local))
    uom = element.get("uom") if element is not None else None
    if uom in RADIANS:
        return math.degrees(_measure(shape, local, RADIANS, "urn:ogc:def:uom:EPSG::9101"))
    return _measure(shape, local, DEGREES, "urn:ogc:def:uom:EPSG::9102")


def _arc_band(shape: Any, dimension: int | None) -> tuple[float, float]:
    """The middle of an arc band: halfway between its radii, on the bisector of its angles."""
    lat, lon = _position(shape, dimension)
    metres = "urn:ogc:def:uom:EPSG::9001"
    inner = _measure(shape, "innerRadius", METRES, metres)
    outer = _measure(shape, "outerRadius", METRES, metres)
    if not 0 <= inner <= outer:
        raise PidfError("gs:ArcBand needs 0 <= innerRadius <= outerRadius")
    bearing = _angle(shape, "startAngle") + _angle(shape, "openingAngle") / 2
    return destination(lat, lon, bearing, (inner + outer) / 2)


def destination(lat: float, lon: float, bearing: float, metres: float) -> tuple[float, float]:
    """The point METRES from (LAT, LON) at BEARING degrees from north, on a sphere."""
    phi, lam, theta = math.radians(lat), math.radians(lon), math.radians(bearing)
    delta = metres / EARTH_RADIUS_M
    phi2 = math.asin(max(-1.0, min(1.0, math.sin(phi) * math.cos(delta)
                                   + math.cos(phi) * math.sin(delta) * math.cos(theta))))
    lam2 = lam + math.atan2(math.sin(theta) * math.sin(delta) * math.cos(phi),
                            math.cos(delta) - math.sin(phi) * math.sin(phi2))
    return lat_lon(math.degrees(phi2), (math.degrees(lam2) + 540) % 360 - 180)


def _polygon(shape: Any, dimension: int | None) -> tuple[float, float]:
    """The centre of a polygon's outer ring (RFC 5491: gml:posList or a list of gml:pos)."""
    dimension = _crs_dimension(shape) or dimension
    boundary = child(shape, (GML, "exterior"))
    if boundary is None:
        boundary = child(shape, (GML, "outerBoundaryIs"))
    ring = child(boundary, (GML, "LinearRing")) if boundary is not None else None
    if ring is None:
        raise PidfError("gml:Polygon has no exterior gml:LinearRing")
    return _area_point(_ring(ring, dimension, (shape, ring)))


def _prism(shape: Any, dimension: int | None) -> tuple[float, float]:
    polygon = next((e for e in shape.iter() if key(e.tag) == (GML, "Polygon")), None)
    if polygon is None:
        raise PidfError("Prism has no gml:Polygon")
    return _polygon(polygon, dimension)


def _ring(ring: Any, dimension: int | None, holders: tuple[Any, ...]) -> list[tuple[float, float]]:
    pos_list = child(ring, (GML, "posList"))
    listed = child(ring, (GML, "coordinates"))
    if pos_list is not None:
        size = _srs_dimension(pos_list, *holders) or dimension or 2
        values = numbers(pos_list.text, "gml:posList")
        if len(values) % size:
            raise PidfError(f"gml:posList of {len(values)} numbers is not a list of "
                            f"{size}-D positions")
        points = [lat_lon(values[i], values[i + 1]) for i in range(0, len(values), size)]
    elif listed is not None:
        points = coordinates(listed)
    else:
        rows = [numbers(p.text, "gml:pos") for p in children(ring, (GML, "pos"))]
        if any(len(row) not in (2, 3) or len(row) != len(rows[0]) for row in rows):
            raise PidfError("gml:pos elements of the ring differ in dimension")
        points = [lat_lon(row[0], row[1]) for row in rows]
    if len(points) < 4:
        raise PidfError("gml:LinearRing needs at least 4 positions")
    return points


def _srs_dimension(*elements: Any) -> int | None:
    for element in elements:
        value = element.get("srsDimension")
        if value is not None:
            if value.strip() not in ("2", "3"):
                raise PidfError(f"srsDimension {value[:10]!r} is not 2 or 3")
            return int(value)
    return None


def _area_point(points: list[tuple[float, float]]) -> tuple[float, float]:
    area = shapely.Polygon([(lon, lat) for lat, lon in points])
    centre = area.centroid
    if centre.is_empty:
        raise PidfError("gml:Polygon has no area")
    if area.is_valid and not area.contains(centre):
        centre = area.representative_point()
    return lat_lon(centre.y, centre.x)


READERS = {
    (GML, "Point"): _position,
    (GML, "Polygon"): _polygon,
    (GS, "Circle"): _position,
    (GS, "Ellipse"): _position,
    (GS, "Sphere"): _position,
    (GS, "Ellipsoid"): _position,
    (GS, "ArcBand"): _arc_band,
    (GS, "Prism"): _prism,
}
