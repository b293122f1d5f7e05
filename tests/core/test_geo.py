"""Metres around a point (core.geo.metres_around) against pyproj's WGS84 geodesics, and the
test whether an area keeps within a boundary and a margin in metres."""

from __future__ import annotations

import random

import numpy as np
import pytest
from pyproj import Geod

from core.geo import circle, metres_around, polygon, within_boundary

GEOD = Geod(ellps="WGS84")


@pytest.mark.parametrize(("lat0", "lon0"), [(52.09, 5.12), (53.45, 6.80), (50.76, 5.85)])
def test_distances_near_the_centre_are_true_to_one_part_in_ten_thousand(
        lat0: float, lon0: float) -> None:
    project = metres_around(lat0, lon0)
    rng = random.Random(7)
    for _ in range(2000):
        a = (lon0 + rng.uniform(-0.4, 0.4), lat0 + rng.uniform(-0.25, 0.25))
        b = (a[0] + rng.uniform(-0.02, 0.02), a[1] + rng.uniform(-0.012, 0.012))
        east, north = project(np.array([a, b])).T
        measured = float(np.hypot(east[0] - east[1], north[0] - north[1]))
        true = GEOD.inv(a[0], a[1], b[0], b[1])[2]
        assert abs(measured - true) <= 1e-4 * true + 1e-6, (a, b)


#: A square of 0.1° about Utrecht: 6.85 km east-west, 11.12 km north-south.
SQUARE = {"type": "Polygon", "coordinates": [[[5.0, 52.0], [5.1, 52.0], [5.1, 52.1],
                                              [5.0, 52.1], [5.0, 52.0]]]}


@pytest.mark.parametrize(("azimuth", "reach", "inside"), [
    (90, 450, True), (90, 550, False), (270, 450, True), (270, 550, False),
    (0, 450, True), (0, 550, False), (180, 450, True), (180, 550, False),
])
def test_a_circle_may_reach_the_margin_in_metres_across_the_boundary(
        azimuth: float, reach: float, inside: bool) -> None:
    """A circle of 1 km whose far side lies REACH metres beyond the square's edge midpoint."""
    middle = {90: (5.1, 52.05), 270: (5.0, 52.05), 0: (5.05, 52.1), 180: (5.05, 52.0)}[azimuth]
    lon, lat, _ = GEOD.fwd(*middle, azimuth, reach - 1000)
    assert within_boundary(circle(lat, lon, 1000), SQUARE, 500) is inside


def test_a_polygon_is_judged_by_all_of_its_edges() -> None:
    lon, lat, _ = GEOD.fwd(5.1, 52.05, 90, 480)
    near = polygon({"type": "Polygon", "coordinates": [[[5.05, 52.04], [lon, lat],
                                                        [5.05, 52.06], [5.05, 52.04]]]})
    assert within_boundary(near, SQUARE, 500)
    lon, lat, _ = GEOD.fwd(5.1, 52.05, 90, 520)
    far = polygon({"type": "Polygon", "coordinates": [[[5.05, 52.04], [lon, lat],
                                                       [5.05, 52.06], [5.05, 52.04]]]})
    assert not within_boundary(far, SQUARE, 500)
    assert not within_boundary(circle(52.05, 5.05, 300_000), SQUARE, 500)
