"""Online tiles under the console map, as docs/maps.md recommends them: PDOK's
BRT-Achtergrondkaart in Web Mercator. No test talks to the internet, so a loopback server
(fakes/tiles.py) answers PDOK's path layout with a small PNG; the system runs with
MAP_TILES_URL pointing at it, and the browser must ask it for the tiles of the area on screen,
show them (the CSP lets them through) and credit the Kadaster."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect

from core.settings import PDOK_ATTRIBUTION, PDOK_TILES
from fakes.tiles import PATH, TILE, TileServer
from tests.browser.conftest import System, fresh_page, log_in, running_system

#: Corners of the country: on the first view (the whole of the Netherlands) all are on screen.
CORNERS = {"Groningen": (53.2194, 6.5665), "Maastricht": (50.8514, 5.6910),
           "Vlissingen": (51.4425, 3.5736), "Den Helder": (52.9563, 4.7601)}


@pytest.fixture(scope="module")
def tiles() -> Iterator[TileServer]:
    with TileServer() as server:
        yield server


@pytest.fixture(scope="module")
def tiled_system(tmp_path_factory: pytest.TempPathFactory,
                 new_database_url: Callable[[], str], tiles: TileServer) -> Iterator[System]:
    """The whole system, as a deployment with PDOK tiles behind a mirror would run it."""
    with running_system(tmp_path_factory.mktemp("tiled"), new_database_url(), participants=0,
                        MAP_TILES_URL=tiles.template,
                        MAP_TILES_ATTRIBUTION=PDOK_ATTRIBUTION) as running:
        yield running


def tile_of(lat: float, lon: float, z: int) -> tuple[int, int, int]:
    """The Web Mercator (XYZ, y from the top) tile holding a point at zoom Z."""
    n = 2 ** z
    phi = math.radians(lat)
    return (z, int((lon + 180) / 360 * n),
            int((1 - math.log(math.tan(phi) + 1 / math.cos(phi)) / math.pi) / 2 * n))


def shown_tiles(page: Page) -> list[str]:
    """The src of every tile image the map has loaded and shows."""
    return page.eval_on_selector_all(
        "#area-map img.leaflet-tile-loaded",
        "images => images.filter(i => i.complete && i.naturalWidth === 256).map(i => i.src)")


def wait_for(page: Page, check: Callable[[], bool], what: str) -> None:
    for _attempt in range(150):
        if check():
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"waited in vain for {what}")


def test_pdok_is_the_documented_template_and_the_mirror_keeps_its_path_layout() -> None:
    assert PDOK_TILES == ("https://service.pdok.nl/brt/achtergrondkaart/wmts/v2_0/standaard/"
                          "EPSG:3857/{z}/{x}/{y}.png")
    assert urlsplit(PDOK_TILES).path == PATH


def test_the_console_map_shows_the_tiles_of_the_area_on_screen(
        browser: Browser, tiled_system: System, tiles: TileServer) -> None:
    origin = tiles.template.split("/brt/")[0]
    with fresh_page(browser, tiled_system) as page:
        log_in(page, "centralist@example.org")
        failed: list[str] = []
        page.on("requestfailed", lambda request: failed.append(request.url))
        response = page.goto("/console/actions/new")
        assert response is not None
        policy = response.headers["content-security-policy"]
        assert f"img-src 'self' data: blob: {origin};" in policy
        expect(page.locator("#area-map")).to_have_attribute("data-state", "ready")
        expect(page.locator(".leaflet-control-attribution")).to_contain_text(
            "Kaartgegevens © Kadaster")
        wait_for(page, lambda: bool(tiles.requests), "the first tiles")
        z = tiles.requests[0][0]
        assert 6 <= z <= 8
        corners = {name: tile_of(lat, lon, z) for name, (lat, lon) in CORNERS.items()}
        wait_for(page, lambda: set(corners.values()) <= set(tiles.requests),
                 f"the tiles of the whole country at zoom {z}: {corners}")
        wait_for(page, lambda: len(shown_tiles(page)) == len(set(tiles.requests)),
                 "every tile asked for to be shown")
        first = list(tiles.requests)
        assert {level for level, _x, _y in first} == {z}  # one zoom level for the whole country
        assert all(0 <= x < 2 ** z and 0 <= y < 2 ** z for _z, x, y in first)

        page.locator("#area-place").fill("3511")
        page.keyboard.press("Enter")
        expect(page.locator("#area-radius")).not_to_have_value("2000")
        lat, lon = (float(page.input_value(f"#area-{n}")) for n in ("lat", "lon"))

        def street_level() -> bool:
            later = tiles.requests[len(first):]
            return bool(later) and max(z for z, _x, _y in later) >= 13 and any(
                re.search(r"/EPSG:3857/1[3-6]/", src) for src in shown_tiles(page))

        wait_for(page, street_level, "tiles at street level")
        page.wait_for_timeout(500)  # the zoom animation ends; the last tiles arrive
        later = tiles.requests[len(first):]
        top = max(z for z, _x, _y in later)
        centre = tile_of(lat, lon, top)
        assert centre in later, (centre, sorted(set(later)))
        box = page.locator("#area-map").bounding_box()
        assert box is not None
        reach_x = math.ceil(box["width"] / 2 / 128) + 1  # a tile may be shown at half size
        reach_y = math.ceil(box["height"] / 2 / 128) + 1
        shown = {(x, y) for z, x, y in later if z == top}
        columns, rows = {x for x, _y in shown}, {y for _x, y in shown}
        assert shown == {(x, y) for x in columns for y in rows}  # one rectangle, no gaps
        assert max(columns) - min(columns) + 1 == len(columns)
        assert max(rows) - min(rows) + 1 == len(rows)
        assert all(abs(x - centre[1]) <= reach_x and abs(y - centre[2]) <= reach_y
                   for x, y in shown), sorted(shown)
        assert all(urlsplit(src).netloc == urlsplit(origin).netloc and TILE.search(src)
                   for src in shown_tiles(page))
    assert not tiles.misses and not failed, (tiles.misses, failed)
