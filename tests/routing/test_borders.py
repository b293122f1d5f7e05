"""Coordinates near a region border route by the real boundary (issue 11, point 7).

The border that routing knows is the edge between the municipalities of two safety regions:
the database holds municipality boundaries only. The tests rebuild each region here as the
union of its municipalities in core/data/municipalities.geojson (grouped by the file's own
`safety_region`, not the database's table), walk every border that two regions share, and
step off it at right angles, 500 m to 1 m, to both sides: each point must route to the region
on its side and that region's meldkamer. A step that lands elsewhere (a third region at a
corner, a lake, the sea) is skipped by shapely's own test of the expected region, and counted.
Off the outer edge (the national border, the coast, a lake shore) a point must go to the
nearest region, measured independently in RD New (EPSG:28992).

core/data/safety_regions.geojson is not what routing uses. It comes from the same TopoJSON
but from CBS's separate, generalised safety-region layer, simplified on its own: it shares
6 of its 290 arcs with the municipality layer. Both layers name the same 50 pairs of
neighbours, but only 18 of those borders coincide; the others lie up to 680 m from the
municipalities' version, and 1.5 km north of Amsterdam (Zaanstreek-Waterland and
Amsterdam-Amstelland). 500 m off the region layer's borders the two layers agree on the side.

Offsets are geodesic on WGS84 (pyproj's Geod): the shortest step is exactly 1 m. All the
sampling is deterministic: evenly spaced along each border, nothing random.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pytest
import shapely
from pyproj import Geod, Transformer
from shapely.geometry import shape
from sqlalchemy.orm import Session

from core.settings import DEFAULT_DATA_DIR
from routing.directory import NEAR_M, place_at_point
from routing.resolve import RouteRequest, resolve
from tests.routing.conftest import NOW

GEOD = Geod(ellps="WGS84")
TO_RD = Transformer.from_crs("EPSG:4326", "EPSG:28992", always_xy=True)
#: Steps off a shared border, in metres, to either side.
STEPS = (500.0, 100.0, 10.0, 1.0)
#: Points per shared border, evenly spaced along it.
PER_BORDER = 12
#: Steps into each region from a corner of its border, along the bisector of its angle.
CORNER_STEPS = (100.0, 10.0, 1.0)
#: Steps off the outer edge of the country, all within routing's 25 km.
OUTSIDE = (500.0, 5_000.0, 24_000.0)
PER_EDGE = 16
#: Two regions whose distances from a point outside differ by less than this are a tie.
TIE_M = 2.0

Coord = tuple[float, float]
Segment = tuple[Coord, Coord]


@dataclass(frozen=True)
class Region:
    code: str
    name: str
    meldkamer: str
    area: shapely.Geometry  # oriented: the region lies left of every ring


@dataclass(frozen=True)
class Step:
    """A point DISTANCE metres off segment BASE, on the side of region EXPECTED."""

    border: str  # "VR01|VR02" for a shared border, "VR01|outside" for the outer edge
    expected: str
    distance: float
    lon: float
    lat: float
    base: Segment


@dataclass(frozen=True)
class Sampled:
    checked: list[Step]
    skipped: Counter[tuple[float, str]]

    def skip_rate(self, distance: float | None = None) -> float:
        skipped = sum(n for (d, _), n in self.skipped.items() if distance in (None, d))
        checked = sum(1 for s in self.checked if distance in (None, s.distance))
        return skipped / (skipped + checked)


def _features(name: str) -> list[dict[str, Any]]:
    document = json.loads((DEFAULT_DATA_DIR / name).read_text(encoding="utf-8"))
    return document["features"]


@cache
def regions() -> dict[str, Region]:
    """Each safety region as the union of its municipalities, named as in the region layer."""
    parts: dict[str, list[shapely.Geometry]] = defaultdict(list)
    for feature in _features("municipalities.geojson"):
        parts[feature["properties"]["safety_region"]].append(
            shapely.make_valid(shape(feature["geometry"])))
    found = {}
    for feature in _features("safety_regions.geojson"):
        code, name, meldkamer = (feature["properties"][k] for k in ("code", "name", "meldkamer"))
        area = shapely.orient_polygons(shapely.union_all(parts[code]))
        shapely.prepare(area)
        found[code] = Region(code, name, meldkamer, area)
    return found


def _segments(area: shapely.Geometry) -> Iterator[Segment]:
    for polygon in shapely.get_parts(area):
        for ring in (polygon.exterior, *polygon.interiors):
            coords = list(ring.coords)
            yield from zip(coords[:-1], coords[1:], strict=True)


def _neighbours(areas: dict[str, shapely.Geometry]) -> dict[Segment, str | None]:
    """For each segment of each region's rings, the region on its other side (the same
    segment, reversed, in that region's rings), or None."""
    owner = {segment: code for code, area in areas.items() for segment in _segments(area)}
    return {(start, end): owner.get((end, start)) for start, end in owner}


def _edges(areas: dict[str, shapely.Geometry]) -> tuple[dict[tuple[str, str], list[Segment]],
                                                        dict[str, list[Segment]]]:
    """The shared borders, each as the segments of its first region's rings (that region lies
    on their left), and what is left of each region's rings: its outer edge."""
    neighbour = _neighbours(areas)
    shared: dict[tuple[str, str], list[Segment]] = defaultdict(list)
    outer: dict[str, list[Segment]] = defaultdict(list)
    for code in sorted(areas):
        for segment in _segments(areas[code]):
            other = neighbour[segment]
            if other is None:
                outer[code].append(segment)
            elif code < other:
                shared[code, other].append(segment)
    return dict(shared), dict(outer)


@cache
def borders() -> tuple[dict[tuple[str, str], list[Segment]], dict[str, list[Segment]]]:
    return _edges({code: region.area for code, region in regions().items()})


def _along(segments: list[Segment], count: int) -> Iterator[tuple[float, float, float, Segment]]:
    """COUNT points evenly spaced along the chain of SEGMENTS (by geodesic length), each with
    the azimuth of its segment there and the segment."""
    ends = np.array(segments)
    lon1, lat1, lon2, lat2 = ends[:, 0, 0], ends[:, 0, 1], ends[:, 1, 0], ends[:, 1, 1]
    lengths = GEOD.inv(lon1, lat1, lon2, lat2)[2]
    total = np.concatenate([[0.0], np.cumsum(lengths)])
    for k in range(count):
        at = (k + 0.5) / count * total[-1]
        i = int(np.searchsorted(total, at, side="right")) - 1
        f = (at - total[i]) / lengths[i]
        lon = lon1[i] + f * (lon2[i] - lon1[i])
        lat = lat1[i] + f * (lat2[i] - lat1[i])
        azimuth = GEOD.inv(lon, lat, lon2[i], lat2[i])[0]
        yield lon, lat, azimuth, segments[i]


def _step(border: str, expected: str, lon: float, lat: float, azimuth: float, distance: float,
          base: Segment) -> Step:
    to_lon, to_lat, _ = GEOD.fwd(lon, lat, azimuth, distance)
    return Step(border, expected, distance, float(to_lon), float(to_lat), base)


@cache
def shared_steps() -> Sampled:
    """Steps to both sides of every shared border; those not inside the region of their side
    (a corner, water, a third region) are skipped."""
    areas = regions()
    checked: list[Step] = []
    skipped: Counter[tuple[float, str]] = Counter()
    for (left, right), segments in borders()[0].items():
        for lon, lat, azimuth, base in _along(segments, PER_BORDER):
            for distance in STEPS:
                for expected, turn in ((left, -90.0), (right, 90.0)):
                    step = _step(f"{left}|{right}", expected, lon, lat, azimuth + turn,
                                 distance, base)
                    point = shapely.Point(step.lon, step.lat)
                    if areas[expected].area.contains(point):
                        checked.append(step)
                    else:
                        elsewhere = any(r.area.intersects(point) for r in areas.values())
                        skipped[distance, "other region" if elsewhere else "no region"] += 1
    return Sampled(checked, skipped)


def _route_place(db: Session, step: Step) -> tuple[str, str, float]:
    place = place_at_point(db, step.lat, step.lon)
    return place.region, place.meldkamer_code, place.distance_m


# --- the data ----------------------------------------------------------------------------------

def test_the_region_layer_has_the_same_neighbours_but_borders_drawn_apart() -> None:
    shared, _ = borders()
    layer_shared, _ = _edges(_region_layer())
    assert sorted(layer_shared) == sorted(shared) and len(shared) == 50
    apart = {}
    for pair, segments in shared.items():
        ours, theirs = (_rd(shapely.MultiLineString(s)) for s in (segments, layer_shared[pair]))
        apart[pair] = ours.hausdorff_distance(theirs)
    assert max(apart.values()) < 1_600
    assert max(apart, key=apart.__getitem__) == ("VR11", "VR13")
    assert sum(1 for metres in apart.values() if metres < 1) == 18


def test_points_500_m_off_the_region_layer_borders_route_to_that_layers_side(
        db: Session) -> None:
    """The region layer's own borders, sampled as the municipalities' are: 500 m off them,
    the two layers agree on the side (at 100 m they do not always)."""
    layer = _region_layer()
    ours = regions()
    checked, skipped, disagree = 0, 0, []
    for (left, right), segments in _edges(layer)[0].items():
        for lon, lat, azimuth, base in _along(segments, PER_BORDER):
            for expected, turn in ((left, -90.0), (right, 90.0)):
                step = _step(f"{left}|{right}", expected, lon, lat, azimuth + turn, 500.0, base)
                point = shapely.Point(step.lon, step.lat)
                if not layer[expected].contains(point):
                    skipped += 1
                elif not ours[expected].area.contains(point):
                    disagree.append(step)
                else:
                    checked += 1
                    region = ours[expected]
                    assert _route_place(db, step) == (region.name, region.meldkamer, 0.0), step
    assert disagree == [] and checked > 1_100 and skipped < 0.07 * checked


def _region_layer() -> dict[str, shapely.Geometry]:
    layer = {}
    for feature in _features("safety_regions.geojson"):
        area = shapely.orient_polygons(shapely.make_valid(shape(feature["geometry"])))
        shapely.prepare(area)
        layer[feature["properties"]["code"]] = area
    return layer


def _rd(geometry: shapely.Geometry) -> shapely.Geometry:
    """GEOMETRY in RD New metres, its straight lon/lat edges kept straight to a few mm."""
    dense = shapely.segmentize(geometry, 0.005)
    return shapely.transform(dense, lambda xy: np.column_stack(TO_RD.transform(xy[:, 0],
                                                                                xy[:, 1])))


# --- shared borders ---------------------------------------------------------------------------

def test_every_step_off_a_shared_border_is_the_distance_asked_at_right_angles() -> None:
    for step in shared_steps().checked:
        line = _rd(shapely.LineString(step.base))
        point = shapely.Point(TO_RD.transform(step.lon, step.lat))
        assert abs(line.distance(point) - step.distance) <= 2e-4 * step.distance + 0.005, step


def test_points_either_side_of_every_shared_border_route_to_their_own_region(
        db: Session) -> None:
    sampled, names = shared_steps(), regions()
    routed = [(step, _route_place(db, step)) for step in sampled.checked]
    region = {code: (r.name, r.meldkamer, 0.0) for code, r in names.items()}
    assert [(step, got) for step, got in routed if got != region[step.expected]] == []
    assert len({step.border for step in sampled.checked if step.distance == 1.0}) == 50
    assert len(sampled.checked) > 4_600
    assert sampled.skip_rate(1.0) == 0 and sampled.skip_rate(10.0) < 0.005
    assert sampled.skip_rate(500.0) < 0.08 and sampled.skip_rate() < 0.025


def test_neighbours_with_one_meldkamer_still_flip_the_region(db: Session) -> None:
    names = regions()
    same = {f"{a}|{b}" for a, b in borders()[0] if names[a].meldkamer == names[b].meldkamer}
    assert len(same) == 18
    sides: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for step in shared_steps().checked:
        if step.border in same and step.distance == 1.0:
            place = place_at_point(db, step.lat, step.lon)
            sides[step.border].add((place.region, place.meldkamer_code))
    assert all(len(sides[border]) == 2 for border in same)
    assert all(len({code for _, code in sides[border]}) == 1 for border in same)


def test_a_call_with_coordinates_goes_the_same_way_through_resolve(db: Session) -> None:
    names = regions()
    for step in shared_steps().checked:
        decision = resolve(db, RouteRequest(lat=step.lat, lon=step.lon), NOW,
                           national_fallback="MN")
        region = names[step.expected]
        assert (decision.reason, decision.meldkamer_code) == ("coordinates", region.meldkamer)
        assert decision.detail.split(";")[0].endswith(f" (region {region.name})"), step
        assert " lie in " in decision.detail


@cache
def corner_steps() -> Sampled:
    """Steps into each region at every corner of its border where the neighbour changes
    (three regions meet, or a border meets the coast or the national border), along the
    bisector of the region's angle there."""
    areas = regions()
    neighbour = _neighbours({code: region.area for code, region in areas.items()})
    checked: list[Step] = []
    skipped: Counter[tuple[float, str]] = Counter()
    for code, region in sorted(areas.items()):
        for before, corner, after in _corners(region.area, neighbour):
            out = GEOD.inv(*corner, *after[1])[0]
            back = GEOD.inv(*corner, *before[0])[0]
            bisector = out - ((out - back) % 360.0) / 2
            for distance in CORNER_STEPS:
                step = _step(f"{code}@{corner}", code, *corner, bisector, distance, after)
                if region.area.contains(shapely.Point(step.lon, step.lat)):
                    checked.append(step)
                else:
                    skipped[distance, "not inside"] += 1
    return Sampled(checked, skipped)


def _corners(area: shapely.Geometry, neighbour: dict[Segment, str | None]
             ) -> Iterator[tuple[Segment, Coord, Segment]]:
    for polygon in shapely.get_parts(area):
        for ring in (polygon.exterior, *polygon.interiors):
            coords = list(ring.coords)
            segments = list(zip(coords[:-1], coords[1:], strict=True))
            for before, after in zip(segments[-1:] + segments[:-1], segments, strict=True):
                if neighbour[before] != neighbour[after]:
                    yield before, after[0], after


def test_steps_into_each_region_at_its_corners_route_to_it(db: Session) -> None:
    sampled, names = corner_steps(), regions()
    for step in sampled.checked:
        region = names[step.expected]
        assert _route_place(db, step) == (region.name, region.meldkamer, 0.0), step
    for step in sampled.checked[::3]:
        decision = resolve(db, RouteRequest(lat=step.lat, lon=step.lon), NOW,
                           national_fallback="MN")
        assert decision.meldkamer_code == names[step.expected].meldkamer, step
    regions_at = Counter(step.border.split("@")[1] for step in sampled.checked
                         if step.distance == 1.0)
    assert len(regions_at) == 82 and sum(1 for n in regions_at.values() if n == 3) == 19
    assert sampled.skip_rate(1.0) == 0 and sampled.skip_rate() < 0.02


# --- the outer edge ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Nearest:
    step: Step
    region: str
    metres: float


@cache
def _planar_regions() -> tuple[list[str], list[shapely.Geometry], shapely.STRtree]:
    codes = sorted(regions())
    planar = [_rd(regions()[code].area) for code in codes]
    return codes, planar, shapely.STRtree(planar)


def nearest_regions(lon: float, lat: float) -> list[tuple[float, str]]:
    """The regions within routing's reach of a point outside them all, nearest first, with
    the geodesic distance to the nearest point of each as found in RD New."""
    codes, planar, tree = _planar_regions()
    at = shapely.Point(TO_RD.transform(lon, lat))
    ranked = []
    for i in tree.query(at, predicate="dwithin", distance=NEAR_M * 1.01):
        foot = shapely.shortest_line(at, planar[i]).coords[1]
        foot_lon, foot_lat = TO_RD.transform(*foot, direction="INVERSE")
        ranked.append((float(GEOD.inv(lon, lat, foot_lon, foot_lat)[2]), codes[i]))
    return sorted(ranked)


@cache
def outside_steps() -> tuple[list[Nearest], Counter[tuple[float, str]]]:
    """Steps off the outer edge of each region that land on no region, each with the region
    nearest to it; a near tie is skipped."""
    areas = regions()
    found: list[Nearest] = []
    skipped: Counter[tuple[float, str]] = Counter()
    for code, segments in sorted(borders()[1].items()):
        for lon, lat, azimuth, base in _along(segments, PER_EDGE):
            for distance in OUTSIDE:
                step = _step(f"{code}|outside", code, lon, lat, azimuth + 90.0, distance, base)
                point = shapely.Point(step.lon, step.lat)
                if any(region.area.intersects(point) for region in areas.values()):
                    skipped[distance, "on land"] += 1
                    continue
                ranked = nearest_regions(step.lon, step.lat)
                if len(ranked) > 1 and ranked[1][0] - ranked[0][0] < TIE_M:
                    skipped[distance, "tie"] += 1
                    continue
                found.append(Nearest(step, ranked[0][1], ranked[0][0]))
    return found, skipped


def test_points_outside_the_country_go_to_the_nearest_region(db: Session) -> None:
    found, skipped = outside_steps()
    names = regions()
    wrong = []
    for near in found:
        place = place_at_point(db, near.step.lat, near.step.lon)
        region = names[near.region]
        if (place.region, place.meldkamer_code) != (region.name, region.meldkamer) \
                or abs(place.distance_m - near.metres) > 0.05:
            wrong.append((near, place))
    assert wrong == []
    assert len(found) > 800
    on_land = skipped[500.0, "on land"] + skipped[500.0, "tie"]
    assert on_land < 0.08 * sum(1 for n in found if n.step.distance == 500.0)
    assert sum(1 for n in found if n.region != n.step.expected) > 50  # nearest is another
    tied = sum(n for (_, why), n in skipped.items() if why == "tie")
    assert tied < 0.01 * len(found)


@pytest.mark.parametrize(("where", "lat", "lon", "nearest", "next_nearest"), [
    ("Germany", 51.811537, 6.078178, "VR07", "VR08"),
    ("Germany", 51.706687, 6.312790, "VR06", "VR23"),
    ("Belgium", 51.053361, 5.462532, "VR23", "VR22"),
    ("Belgium", 51.199968, 4.875820, "VR20", "VR22"),
    ("IJsselmeer", 52.758458, 5.445727, "VR02", "VR25"),
    ("North Sea", 52.301015, 4.075921, "VR15", "VR16"),
])
def test_the_nearer_of_two_regions_wins_by_a_few_metres(
        db: Session, where: str, lat: float, lon: float, nearest: str,
        next_nearest: str) -> None:
    """Points 4 to 24 km out where two regions are almost equally far (found by sampling
    200 points an edge). Routing used to measure in one planar copy of the country, scaled
    for its middle: east-west 3 % too short in the south and too long in the north, so it
    picked the farther region at each of these."""
    (first, one), (second, other) = nearest_regions(lon, lat)[:2]
    assert (one, other) == (nearest, next_nearest) and TIE_M < second - first < 30, where
    place = place_at_point(db, lat, lon)
    assert place.region == regions()[nearest].name, where
    assert abs(place.distance_m - first) < 0.05


def test_a_call_from_outside_the_country_goes_the_same_way_through_resolve(
        db: Session) -> None:
    names = regions()
    found, _ = outside_steps()
    for near in found:
        decision = resolve(db, RouteRequest(lat=near.step.lat, lon=near.step.lon), NOW,
                           national_fallback="MN")
        region = names[near.region]
        assert (decision.reason, decision.meldkamer_code) == ("coordinates", region.meldkamer)
        assert decision.detail.split(";")[0].endswith(
            f" (region {region.name}), the nearest municipality")
        assert " km outside " in decision.detail
