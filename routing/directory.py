"""The meldkamer directory: who answers for a meldkamer code, a postcode, a municipality or a
point on the map.

Codes, postcodes and municipalities are looked up by indexed queries each time, so a changed
number or SIP URI in the configuration counts at once after `burgernet load-reference`. The
municipality boundaries are different: testing a point against them needs them in memory, so
they are read into an STRtree once per database and process, and again when they changed
(`routing.reference_cache`; `warm_up` builds it ahead of the first call).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry import shape
from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.orm import Session, aliased

from core.errors import BurgernetError
from core.geo import WGS84_A, WGS84_E2, AreaError, check_coordinates, gaussian_radius
from core.models import Meldkamer, Municipality, Postcode, SafetyRegion
from routing.reference_cache import CHECK_EVERY, ReferenceCache

#: A point off the Dutch land (Belgium, Germany, the sea) still counts for the nearest Dutch
#: municipality up to this distance; border residents call about Dutch actions nearby.
NEAR_M = 25_000.0
#: Scale of the planar copy of the boundaries used to find what is near a point: metres per
#: degree at the middle of the country. Candidates are searched with a margin for the change
#: of scale between the north and the south (up to 3 %, enough to pick the wrong one of two
#: near-equal distances), and distances are then measured in a plane around the point.
MID_LAT = 52.15
KY = math.radians(gaussian_radius(MID_LAT))
KX = KY * math.cos(math.radians(MID_LAT))
MARGIN = 1.1
#: Longest edge, in degrees, of the copy of the boundaries that distances are measured on.
DENSE_DEG = 0.01


class UnknownPlace(BurgernetError, LookupError):
    """No meldkamer answers for this postcode, place or point; the message says why."""

    error_id = "unknown_place"


@dataclass(frozen=True)
class MeldkamerInfo:
    """Where a meldkamer takes calls, and which meldkamer takes them when it cannot."""

    code: str
    name: str
    phone: str | None
    sip_uri: str | None
    fallback_code: str | None

    @property
    def reachable(self) -> bool:
        return bool(self.phone or self.sip_uri)


@dataclass(frozen=True)
class Place:
    """The municipality a postcode or point belongs to, and its meldkamer.

    DISTANCE_M is 0 for a point inside the municipality and otherwise how far the point lies
    from its boundary (a point abroad or at sea that is near enough to count).
    """

    meldkamer_code: str
    municipality_code: str
    municipality: str
    region: str
    distance_m: float = 0.0
    pc4: str | None = None

    def describe(self) -> str:
        where = f"{self.municipality} (region {self.region})"
        if self.distance_m > 0:
            km = f"{self.distance_m / 1000:.1f} km" if self.distance_m >= 100 else "under 0.1 km"
            return f"{km} outside {where}, the nearest municipality"
        return f"in {where}"


# --- meldkamers, postcodes and municipalities by query ---------------------------------------

def _meldkamer_query() -> Select[str, str, str | None, str | None, str | None]:
    fallback = aliased(Meldkamer)
    return (select(Meldkamer.code, Meldkamer.name, Meldkamer.phone, Meldkamer.sip_uri,
                   fallback.code)
            .outerjoin(fallback, Meldkamer.fallback_id == fallback.id))


def _place_query() -> Select[str, str, str, str]:
    return (select(Meldkamer.code, Municipality.code, Municipality.name, SafetyRegion.name)
            .select_from(Municipality)
            .join(SafetyRegion, Municipality.safety_region_id == SafetyRegion.id)
            .join(Meldkamer, SafetyRegion.meldkamer_id == Meldkamer.id))


# Built once: constructing a statement (above all an alias) costs more than running it, and
# the webhook that routes a call makes several of these lookups.
_MELDKAMER_BY_CODE = _meldkamer_query().where(Meldkamer.code == bindparam("code"))
_MELDKAMER_BY_ID = _meldkamer_query().where(Meldkamer.id == bindparam("id"))
_PLACE_BY_POSTCODE = (_place_query().add_columns(Postcode.pc4)
                      .join(Postcode, Postcode.municipality_id == Municipality.id)
                      .where(Postcode.pc4 == bindparam("pc4")))


def meldkamer(session: Session, code: str) -> MeldkamerInfo | None:
    """The meldkamer with this code, or None."""
    row = session.execute(_MELDKAMER_BY_CODE, {"code": code}).first()
    return MeldkamerInfo(*row) if row else None


def meldkamer_by_id(session: Session, meldkamer_id: int) -> MeldkamerInfo | None:
    row = session.execute(_MELDKAMER_BY_ID, {"id": meldkamer_id}).first()
    return MeldkamerInfo(*row) if row else None


def meldkamers(session: Session) -> dict[str, MeldkamerInfo]:
    """The whole directory by code."""
    rows = session.execute(_meldkamer_query().order_by(Meldkamer.code)).all()
    return {row[0]: MeldkamerInfo(*row) for row in rows}


def place_for_postcode(session: Session, pc4: str) -> Place:
    """The municipality and meldkamer of a four-digit postcode (PC4 → municipality → safety
    region → meldkamer); UnknownPlace when the postcode is not in the reference data."""
    row = session.execute(_PLACE_BY_POSTCODE, {"pc4": pc4}).first()
    if row is None:
        raise UnknownPlace(f"postcode {pc4} is not a known PC4 area")
    meldkamer_code, municipality_code, municipality, region, postcode = row
    return Place(meldkamer_code, municipality_code, municipality, region, pc4=postcode)


def place_by_name(session: Session, name: str) -> Place:
    """The municipality called NAME, or else the one municipality with a place of that name
    (the A3 of a civic address is a city, which need not be a municipality)."""
    wanted = name.strip().lower()
    row = session.execute(_place_query().where(func.lower(Municipality.name) == wanted)
                          .limit(1)).first()
    if row is not None:
        return Place(*row)
    rows = session.execute(_place_query().join(Postcode, Postcode.municipality_id
                                               == Municipality.id)
                           .where(func.lower(Postcode.place) == wanted).distinct()
                           .limit(2)).all()
    if len(rows) == 1:
        return Place(*rows[0])
    if rows:
        raise UnknownPlace(f"place {name[:40]!r} lies in more than one municipality")
    raise UnknownPlace(f"place {name[:40]!r} is not a known municipality or place")


# --- points, against the boundaries held in memory --------------------------------------------

class BoundaryIndex:
    """Municipality boundaries in two STRtrees: lon/lat for containment, and a planar copy in
    metres to find the municipalities near a point outside them all, whose distances are then
    measured on the ellipsoid."""

    def __init__(self, rows: list[tuple[str, str, str, str, dict[str, Any]]]) -> None:
        self.places = [Place(meldkamer_code, code, name, region)
                       for meldkamer_code, code, name, region, _ in rows]
        # Not prepared: GEOS builds a prepared geometry's index lazily and not thread-safely
        # (libgeos/geos#825), and a point against a simplified boundary is fast without it.
        geometries = np.array([shapely.make_valid(shape(row[4])) for row in rows])
        self.geometries = geometries
        self.tree = shapely.STRtree(geometries)
        self.planar = shapely.transform(geometries, lambda xy: xy * (KX, KY))
        self.planar_tree = shapely.STRtree(self.planar)
        # Edges cut to about a kilometre, so that each stays straight to a few centimetres in
        # the local plane around a point that `find` measures the nearest one in.
        self.dense = shapely.segmentize(geometries, DENSE_DEG)
        if not rows:  # no reference data loaded yet: nothing is within reach
            self.reach = (math.inf, -math.inf, math.inf, -math.inf)
            return
        lon_min, lat_min, lon_max, lat_max = shapely.total_bounds(geometries)
        reach_lat = NEAR_M * MARGIN / KY
        reach_lon = NEAR_M * MARGIN / (KY * math.cos(math.radians(lat_min)))
        self.reach = (lat_min - reach_lat, lat_max + reach_lat,
                      lon_min - reach_lon, lon_max + reach_lon)

    def find(self, lat: float, lon: float, near_m: float = NEAR_M) -> Place | None:
        """The municipality containing the point, else the nearest within NEAR_M, else None."""
        point = shapely.Point(lon, lat)
        inside = self.tree.query(point, predicate="intersects")
        if len(inside):
            return self.places[int(inside.min())]
        if near_m <= 0 or not self._within_reach(lat, lon, near_m):
            return None
        planar_point = shapely.Point(lon * KX, lat * KY)
        candidates = np.sort(self.planar_tree.query(planar_point, predicate="dwithin",
                                                    distance=near_m * MARGIN))
        if not len(candidates):
            return None
        local = shapely.transform(self.dense[candidates], _metres_around(lat, lon))
        distances = shapely.distance(_ORIGIN, local)
        best = int(np.argmin(distances))
        if distances[best] > near_m:
            return None
        place = self.places[int(candidates[best])]
        return Place(place.meldkamer_code, place.municipality_code, place.municipality,
                     place.region, distance_m=float(distances[best]))

    def _within_reach(self, lat: float, lon: float, near_m: float) -> bool:
        if near_m > NEAR_M:
            return True
        lat_min, lat_max, lon_min, lon_max = self.reach
        return lat_min <= lat <= lat_max and lon_min <= lon <= lon_max


def _metres_around(lat0: float, lon0: float) -> Callable[[np.ndarray], np.ndarray]:
    """Lon/lat to metres east and north of (LAT0, LON0) on the WGS84 ellipsoid, each point
    scaled at the mean of its latitude and LAT0: its distance from the origin is then the
    geodesic one to within 5 cm at 25 km (tests/routing/test_borders.py holds it to that
    against pyproj's geodesics)."""

    def to_metres(lonlat: np.ndarray) -> np.ndarray:
        mid = np.radians((lonlat[:, 1] + lat0) / 2)
        w = np.sqrt(1 - WGS84_E2 * np.sin(mid) ** 2)
        east = WGS84_A / w * np.cos(mid) * np.radians(lonlat[:, 0] - lon0)
        north = WGS84_A * (1 - WGS84_E2) / w**3 * np.radians(lonlat[:, 1] - lat0)
        return np.column_stack((east, north))

    return to_metres


_ORIGIN = shapely.Point(0.0, 0.0)


def _build_boundary_index(session: Session) -> BoundaryIndex:
    rows = session.execute(_place_query().add_columns(Municipality.boundary)
                           .where(Municipality.boundary.is_not(None))
                           .order_by(Municipality.code)).all()
    return BoundaryIndex([tuple(row) for row in rows])


_indexes = ReferenceCache(_build_boundary_index, keep=lambda index: bool(index.places))


def boundary_index(session: Session, *, check_every: float = CHECK_EVERY,
                   clock: Callable[[], float] = time.monotonic) -> BoundaryIndex:
    """The boundary index of SESSION's database, built on first use and again when the
    boundaries changed (`routing.reference_cache`)."""
    return _indexes.get(session, check_every=check_every, clock=clock)


def warm_up(session: Session) -> None:
    """Build the boundary index now (about a tenth of a second) instead of on the first call."""
    boundary_index(session)


def clear_cache() -> None:
    """Forget the boundary indexes; the next call builds them again."""
    _indexes.clear()


def place_at_point(session: Session, lat: float, lon: float, *, near_m: float = NEAR_M) -> Place:
    """The municipality and meldkamer of a point: the municipality containing it, or for a
    point abroad or at sea the nearest one within NEAR_M metres; UnknownPlace otherwise."""
    try:
        check_coordinates(lat, lon)
    except AreaError as exc:
        raise UnknownPlace(str(exc)) from None
    place = boundary_index(session).find(float(lat), float(lon), near_m)
    if place is None:
        raise UnknownPlace(f"point ({lat:.4f}, {lon:.4f}) lies more than "
                           f"{near_m / 1000:.0f} km from every Dutch municipality")
    return place
