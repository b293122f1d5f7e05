"""Clicking the area picker's Leaflet map at a place, as a person aims: click, look where the
picker put the centre, correct.

Leaflet draws in Web Mercator, so pixels are linear in longitude and in the Mercator ordinate;
two clicks in circle mode (the picker writes each click's coordinates into its lat and lon
fields) fix that line for the map's current zoom, with no access to the map's internals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from playwright.sync_api import Page

#: Utrecht's Dom tower, in the middle of the city where demo participants live.
UTRECHT = (52.0907, 5.1214)


def mercator(lat: float) -> float:
    return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    """The distance between two nearby points, in metres (equirectangular is enough here)."""
    dy = (a[0] - b[0]) * 111_320
    dx = (a[1] - b[1]) * 111_320 * math.cos(math.radians((a[0] + b[0]) / 2))
    return math.hypot(dx, dy)


@dataclass(frozen=True)
class MapView:
    """Where a coordinate is on the map element, at the zoom it was measured at."""

    x0: float
    lon0: float
    x_per_degree: float
    y0: float
    m0: float
    y_per_mercator: float

    def pixel(self, lat: float, lon: float) -> dict[str, float]:
        return {"x": self.x0 + (lon - self.lon0) * self.x_per_degree,
                "y": self.y0 + (mercator(lat) - self.m0) * self.y_per_mercator}


class AreaPicker:
    """The picker with id prefix PREFIX on PAGE (see templates/map/area_picker.html)."""

    def __init__(self, page: Page, prefix: str = "area") -> None:
        self.page = page
        self.prefix = prefix
        self.map = page.locator(f"#{prefix}-map")

    def field(self, name: str) -> str:
        return f"#{self.prefix}-{name}"

    def centre(self) -> tuple[float, float]:
        return (float(self.page.input_value(self.field("lat"))),
                float(self.page.input_value(self.field("lon"))))

    def click_reading(self, x: float, y: float) -> tuple[float, float]:
        """Click at (X, Y) in circle mode and read the centre the picker set."""
        self.map.click(position={"x": x, "y": y})
        return self.centre()

    def measure(self) -> MapView:
        """The map's scale and offset now, from two clicks in circle mode."""
        box = self.map.bounding_box()
        assert box is not None
        x1, y1, x2, y2 = box["width"] * 0.35, box["height"] * 0.35, box["width"] * 0.65, \
            box["height"] * 0.65
        lat1, lon1 = self.click_reading(x1, y1)
        lat2, lon2 = self.click_reading(x2, y2)
        return MapView(x1, lon1, (x2 - x1) / (lon2 - lon1),
                       y1, mercator(lat1), (y2 - y1) / (mercator(lat2) - mercator(lat1)))

    def click_centre(self, lat: float, lon: float, within_m: float) -> tuple[float, float]:
        """Click the map at (LAT, LON) in circle mode until the centre set is within WITHIN_M
        (a second try if the map was still moving after a zoom)."""
        for _attempt in range(3):
            view = self.measure()
            box = self.map.bounding_box()
            assert box is not None
            point = view.pixel(lat, lon)
            assert 0 < point["x"] < box["width"] and 0 < point["y"] < box["height"], point
            self.map.click(position=point)
            centre = self.centre()
            if metres(centre, (lat, lon)) < within_m:
                return centre
        raise AssertionError(f"clicked {centre}, not within {within_m} m of {(lat, lon)}")

    def draw_polygon(self, corners: list[tuple[float, float]]) -> MapView:
        """Switch to polygon mode and click CORNERS on the map (not closing the polygon)."""
        view = self.measure()
        self.page.check(self.field("mode-polygon"))
        for lat, lon in corners:
            self.map.click(position=view.pixel(lat, lon))
        return view
