"""Areas on the map: validated circles and polygons, and the earth geometry to test them.

A circle is a true circle on the earth, not a square of degrees and not cut at a border: a
point is inside when its great-circle distance to the centre is at most the radius, measured
on the sphere that fits the earth best at the centre's latitude (Gauss's mean radius), which
differs from the WGS84 ellipsoid by less than 0.02 % over the distances used here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from shapely.prepared import PreparedGeometry, prep

from core.errors import BurgernetError
from core.settings import DEFAULT_DATA_DIR

EUROPE_LAT = (34.0, 72.0)
EUROPE_LON = (-25.0, 45.0)
#: No Dutch area needs more: 300 km from the centre of the country reaches every border.
MAX_RADIUS_M = 300_000.0
WGS84_A = 6_378_137.0
WGS84_E2 = 6.694379990141e-3


class AreaError(BurgernetError, ValueError):
    """An area that cannot be used: says what is wrong with it, and in PART which part of a
    form to point at (centre, radius, radius_too_large, polygon)."""

    error_id = "invalid_area"

    def __init__(self, message: str, part: str = "polygon") -> None:
        super().__init__(message)
        self.part = part


def check_coordinates(lat: float, lon: float, what: str = "point") -> None:
    """Raise AreaError unless (LAT, LON) are numbers inside Europe."""
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in (lat, lon)):
        raise AreaError(f"{what}: coordinates must be numbers", _part(what))
    if not (EUROPE_LAT[0] <= lat <= EUROPE_LAT[1] and EUROPE_LON[0] <= lon <= EUROPE_LON[1]):
        raise AreaError(f"{what} ({lat}, {lon}) lies outside Europe "
                        "(latitude, longitude in degrees, WGS84)", _part(what))


def _part(what: str) -> str:
    return "centre" if what == "centre" else "polygon"


def gaussian_radius(lat: float) -> float:
    """The radius of the sphere that best fits the WGS84 ellipsoid around latitude LAT."""
    s = math.sin(math.radians(lat))
    return WGS84_A * math.sqrt(1 - WGS84_E2) / (1 - WGS84_E2 * s * s)


@dataclass(frozen=True)
class Box:
    """A latitude/longitude box, for the indexed first pass of a selection."""

    lat_min: float
    lat_max: float
    lon_min: float
    lon_max: float


@dataclass(frozen=True)
class Circle:
    """Everything within RADIUS_M metres (great circle) of (LAT, LON)."""

    lat: float
    lon: float
    radius_m: float

    @property
    def min_cosine(self) -> float:
        """A point is inside when the cosine of its angle to the centre is at least this."""
        return math.cos(self.radius_m / gaussian_radius(self.lat))

    def box(self) -> Box:
        """A box that holds the whole circle (with a small margin for the sphere's fit)."""
        margin = 1.001
        dlat = math.degrees(self.radius_m * margin / gaussian_radius(self.lat))
        widest = min(abs(self.lat) + dlat, 89.9)
        dlon = dlat / math.cos(math.radians(widest))
        return Box(self.lat - dlat, self.lat + dlat, self.lon - dlon, self.lon + dlon)


@dataclass(frozen=True)
class Polygon:
    """A GeoJSON Polygon or MultiPolygon (holes excluded), straight edges in lon/lat."""

    geojson: dict[str, Any]

    @property
    def geometry(self) -> BaseGeometry:
        return _shape(json.dumps(self.geojson, sort_keys=True))

    def box(self) -> Box:
        lon_min, lat_min, lon_max, lat_max = self.geometry.bounds
        return Box(lat_min, lat_max, lon_min, lon_max)


Area = Circle | Polygon


@cache
def _shape(text: str) -> BaseGeometry:
    return shape(json.loads(text))


def circle(lat: float, lon: float, radius_m: float) -> Circle:
    """A validated circle: centre in Europe, radius above 0 and at most MAX_RADIUS_M."""
    check_coordinates(lat, lon, "centre")
    if not isinstance(radius_m, int | float) or not math.isfinite(radius_m) or radius_m <= 0:
        raise AreaError(f"radius {radius_m!r} must be a positive number of metres", "radius")
    if radius_m > MAX_RADIUS_M:
        raise AreaError(f"radius {radius_m:.0f} m is larger than the country "
                        f"(at most {MAX_RADIUS_M:.0f} m; use a polygon for a national area)",
                        "radius_too_large")
    return Circle(float(lat), float(lon), float(radius_m))


def polygon(geojson: dict[str, Any] | str) -> Polygon:
    """A validated GeoJSON Polygon or MultiPolygon: closed rings, no self-intersection."""
    if isinstance(geojson, str):
        try:
            geojson = json.loads(geojson)
        except json.JSONDecodeError as exc:
            raise AreaError(f"polygon is not valid JSON: {exc.msg}") from None
    if not isinstance(geojson, dict):
        raise AreaError("polygon must be a GeoJSON object")
    if geojson.get("type") == "Feature":
        geojson = geojson.get("geometry") or {}
    kind = geojson.get("type")
    if kind not in {"Polygon", "MultiPolygon"}:
        raise AreaError(f"area type {kind!r} is not a Polygon or MultiPolygon")
    coordinates = geojson.get("coordinates")
    polygons = [coordinates] if kind == "Polygon" else coordinates
    if not isinstance(polygons, list) or not polygons:
        raise AreaError("polygon has no coordinates")
    for rings in polygons:
        _check_rings(rings)
    geometry = shape(geojson)
    if not geometry.is_valid:
        reason = shapely.is_valid_reason(geometry)
        raise AreaError(f"polygon is not valid: {reason}")
    return Polygon({"type": kind, "coordinates": coordinates})


def _check_rings(rings: Any) -> None:
    if not isinstance(rings, list) or not rings:
        raise AreaError("polygon needs at least an outer ring")
    for index, ring in enumerate(rings):
        name = "outer ring" if index == 0 else f"hole {index}"
        if not isinstance(ring, list) or len(ring) < 4:
            raise AreaError(f"{name} needs at least 4 positions (a closed triangle)")
        for position in ring:
            if not isinstance(position, list | tuple) or len(position) < 2:
                raise AreaError(f"{name}: position {position!r} is not [longitude, latitude]")
            check_coordinates(position[1], position[0], f"{name} position")
        if list(ring[0][:2]) != list(ring[-1][:2]):
            raise AreaError(f"{name} is open: its last position must repeat the first")


def parse_area(*, lat: float | None = None, lon: float | None = None,
               radius_m: float | None = None, geojson: Any = None) -> Area:
    """Either a circle (lat, lon, radius_m) or a polygon (geojson), validated."""
    if geojson is not None:
        if any(v is not None for v in (lat, lon, radius_m)):
            raise AreaError("give either a circle or a polygon, not both", "centre")
        return polygon(geojson)
    if lat is None or lon is None or radius_m is None:
        raise AreaError("a circle needs a centre (lat, lon) and a radius in metres", "centre")
    return circle(lat, lon, radius_m)


@cache
def netherlands() -> PreparedGeometry[BaseGeometry]:
    """The national land outline from the reference data (its simplification leaves one
    self-intersection, which make_valid repairs)."""
    document = json.loads((DEFAULT_DATA_DIR / "netherlands.geojson").read_text(encoding="utf-8"))
    parts = [shapely.make_valid(shape(f["geometry"])) for f in document["features"]]
    return prep(shapely.union_all(parts))


@cache
def national_area() -> Polygon:
    """The area of a national alert: the land outline widened by about 2 km, so a
    participant just across a border or on the coast is not cut off, and simplified to
    ~500 m so the test per point stays cheap."""
    outline = netherlands().context
    widened = outline.buffer(0.02).simplify(0.005)
    return Polygon(shapely.geometry.mapping(widened))


def in_netherlands(lat: float, lon: float) -> bool:
    """True for a point on Dutch land (by the reference outline)."""
    return bool(netherlands().covers(shapely.Point(lon, lat)))


#: Straight lon/lat edges are cut at this length (degrees, ~150–220 m here) before they are
#: projected, so the projected shape follows them where the projection bends.
SEGMENT_DEG = 0.002


def metres_around(lat0: float, lon0: float) -> Any:
    """Lon/lat (an N×2 array) to metres east and north of (LAT0, LON0): the azimuthal
    equidistant projection on the unit sphere, scaled east and north by the WGS84
    ellipsoid's radii of curvature at LAT0. Any distance between points within 30 km of the
    centre is then true to 1e-4 (tests/core/test_geo.py measures it against pyproj's
    geodesics), so a margin in metres is one in metres, not in degrees."""
    s = math.sin(math.radians(lat0))
    w = math.sqrt(1 - WGS84_E2 * s * s)
    stretch = np.array([WGS84_A / w, WGS84_A * (1 - WGS84_E2) / w**3])
    phi0, lam0 = math.radians(lat0), math.radians(lon0)

    def project(lonlat: np.ndarray) -> np.ndarray:
        phi, dlam = np.radians(lonlat[:, 1]), np.radians(lonlat[:, 0]) - lam0
        cos_c = np.clip(math.sin(phi0) * np.sin(phi)
                        + math.cos(phi0) * np.cos(phi) * np.cos(dlam), -1.0, 1.0)
        c = np.arccos(cos_c)
        k = np.where(c > 1e-12, c / np.sin(np.maximum(c, 1e-12)), 1.0)
        east = k * np.cos(phi) * np.sin(dlam)
        north = k * (math.cos(phi0) * np.sin(phi) - math.sin(phi0) * np.cos(phi) * np.cos(dlam))
        metres: np.ndarray = np.column_stack((east, north)) * stretch
        return metres

    return project


def within_boundary(area: Area, boundary: dict[str, Any], margin_m: float) -> bool:
    """True when AREA lies within BOUNDARY (a GeoJSON Polygon or MultiPolygon) widened by
    MARGIN_M metres. Measured in a projection centred on BOUNDARY, so the margin is in metres
    whatever the latitude, not in degrees."""
    region = shapely.make_valid(shape(boundary))
    centre = region.centroid
    project = metres_around(centre.y, centre.x)
    region_m = shapely.transform(shapely.segmentize(region, SEGMENT_DEG), project)
    area_m: BaseGeometry
    if isinstance(area, Circle):
        middle = shapely.transform(shapely.Point(area.lon, area.lat), project)
        area_m = middle.buffer(area.radius_m, quad_segs=64)
    else:
        area_m = shapely.transform(shapely.segmentize(area.geometry, SEGMENT_DEG), project)
    return bool(region_m.buffer(margin_m, quad_segs=16).covers(area_m))
