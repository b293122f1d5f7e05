"""A centralist finds the area by typing: a postcode, a municipality, coordinates; with the
mouse and with the keyboard only. The map centres on the choice and the circle is set."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.conftest import Screenshot, log_in
from tests.browser.maps import metres

SEARCH = "#area-place"
OPTIONS = "#area-place-list [role=option]"


def open_form(page: Page) -> None:
    log_in(page, "centralist@example.org")
    page.goto("/console/actions/new")
    expect(page.locator("#area-map")).to_have_attribute("data-state", "ready")


def suggestions(page: Page, query: str) -> list[dict[str, Any]]:
    """What the console's search answers for QUERY, asked the way the page asks it."""
    response = page.request.get("/console/map/places.json", params={"q": query})
    assert response.ok, response.text()
    return response.json()["items"]  # type: ignore[no-any-return]


def assert_circle_shown(page: Page, place: dict[str, Any]) -> None:
    """The form holds the place's centre and radius, and the map shows its circle in the
    middle, zoomed so that it fills the map's height (fitBounds, 20 px padding, half steps)."""
    expect(page.locator("#area-lat")).to_have_value(f"{place['lat']:.5f}")
    expect(page.locator("#area-lon")).to_have_value(f"{place['lon']:.5f}")
    expect(page.locator("#area-radius")).to_have_value(str(place["radius_m"]))
    expect(page.locator("#area-mode-circle")).to_be_checked()
    circle = page.locator("#area-map path.area-circle")
    expect(circle).to_have_count(1)
    frame = page.locator("#area-map").bounding_box()
    assert frame is not None
    for _attempt in range(50):  # the zoom animation ends within a quarter second
        box = circle.bounding_box()
        assert box is not None
        middle = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        centred = abs(middle[0] - (frame["x"] + frame["width"] / 2)) < 3 and \
            abs(middle[1] - (frame["y"] + frame["height"] / 2)) < 3
        fits = (frame["height"] - 40) / 1.5 < box["height"] <= frame["height"] - 38
        if centred and fits:
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"circle {box} is not centred and fitted in the map {frame}")


def test_a_centralist_finds_a_postcode_and_the_map_centres_on_it(page: Page) -> None:
    open_form(page)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url)
            if "/console/map/places.json" in request.url else None)
    search = page.locator(SEARCH)
    search.press_sequentially("3511")  # four keystrokes, well within the 150 ms debounce
    options = page.locator(OPTIONS)
    expect(options).to_have_count(1)
    expect(search).to_have_attribute("aria-expanded", "true")
    expect(options.first).to_contain_text("3511 Utrecht")
    expect(options.first).to_contain_text("postcode · Utrecht · Meldkamer Midden-Nederland")
    expect(page.locator("#area-place-status")).to_have_text("1 suggestie; kies met Enter.")
    assert len(asked) < 4, asked  # not one request per keystroke

    [place] = suggestions(page, "3511")
    options.first.click()
    expect(search).to_have_value("3511 Utrecht")
    expect(search).to_have_attribute("aria-expanded", "false")
    expect(page.locator("#area-place-list")).to_be_hidden()
    assert_circle_shown(page, place)
    expect(page.locator("#area-place-picked")).to_have_text(
        f"Gekozen: 3511 Utrecht, straal {place['radius_m']} m. Gemeente Utrecht, "
        "Meldkamer Midden-Nederland.")

    page.fill("#title_nl", "Vermiste jongen (9) in rood jack")
    page.select_option("#kind", "missing_person")
    page.click("#save-draft")
    expect(page).to_have_url(re.compile(r"/console/actions/\d+$"))
    expect(page.locator("#summary-area")).to_contain_text(f"Cirkel van {place['radius_m']} m")
    expect(page.locator("#preview-municipalities")).to_contain_text("Utrecht")


def test_a_municipality_is_chosen_with_the_keyboard_only(page: Page,
                                                        screenshot: Screenshot) -> None:
    open_form(page)
    search = page.locator(SEARCH)
    search.focus()
    page.keyboard.type("houten")
    options = page.locator(OPTIONS)
    expect(options.first).to_contain_text("Houten")
    expect(options.first).to_contain_text("gemeente · Houten")
    count = options.count()
    assert count >= 2  # Houten, then Vierhouten (a village whose name contains it)
    page.keyboard.press("ArrowDown")
    expect(search).to_have_attribute("aria-activedescendant", "area-place-option-0")
    page.keyboard.press("ArrowDown")
    expect(search).to_have_attribute("aria-activedescendant", "area-place-option-1")
    expect(options.nth(1)).to_have_attribute("aria-selected", "true")
    expect(options.nth(0)).to_have_attribute("aria-selected", "false")
    screenshot(page, "place-search", selector="#area-picker")
    page.keyboard.press("ArrowUp")
    expect(search).to_have_attribute("aria-activedescendant", "area-place-option-0")
    page.keyboard.press("ArrowUp")  # wraps round to the last
    expect(search).to_have_attribute("aria-activedescendant", f"area-place-option-{count - 1}")
    page.keyboard.press("Escape")
    expect(page.locator("#area-place-list")).to_be_hidden()
    expect(search).to_have_attribute("aria-expanded", "false")
    page.keyboard.press("ArrowDown")  # opens the list again at the first
    expect(search).to_have_attribute("aria-activedescendant", "area-place-option-0")
    page.keyboard.press("Enter")
    assert re.search(r"/console/actions/new$", page.url), "Enter submitted the form"
    expect(page.locator("#form-errors")).to_have_count(0)
    houten = suggestions(page, "houten")[0]
    assert houten["kind"] == "municipality" and houten["radius_m"] > 3000
    assert_circle_shown(page, houten)
    expect(search).to_be_focused()


def test_coordinates_and_a_polygon_in_progress(page: Page) -> None:
    open_form(page)
    page.check("#area-mode-polygon")
    search = page.locator(SEARCH)
    search.fill("52,0907 5,1214")
    page.keyboard.press("Enter")  # before the suggestions came: taken when they come
    point = {"lat": 52.0907, "lon": 5.1214, "radius_m": 1000}
    assert_circle_shown(page, point)
    expect(search).to_have_value("52.09070, 5.12140")
    centre = (float(page.input_value("#area-lat")), float(page.input_value("#area-lon")))
    assert metres(centre, (52.0907, 5.1214)) < 1
    expect(page.locator("#area-place-picked")).to_contain_text("Gemeente Utrecht")

    search.fill("5.1214, 52.0907")  # the wrong way round
    expect(page.locator(OPTIONS).first).to_contain_text("Breedte- en lengtegraad omgedraaid")

    search.fill("48.8566, 2.3522")  # Paris
    expect(page.locator("#area-place-status")).to_contain_text(
        "Deze coördinaten liggen niet in of bij Nederland")
    expect(page.locator("#area-place-list")).to_be_hidden()
    search.fill("xyzzy")
    expect(page.locator("#area-place-status")).to_contain_text("Niets gevonden.")
    expect(page.locator(OPTIONS)).to_have_count(0)


def test_the_search_speaks_english_for_an_english_user(page: Page) -> None:
    log_in(page, "centralist@example.org")
    page.goto("/console/actions/new?lang=en")
    expect(page.locator("#area-map")).to_have_attribute("data-state", "ready")
    expect(page.locator("label[for=area-place]")).to_have_text(
        "Search for a postcode, place, municipality or coordinates")
    page.locator(SEARCH).fill("3511 AB")
    option = page.locator(OPTIONS).first
    expect(option).to_contain_text("postcode · Utrecht")
    expect(option).to_contain_text("Only four-digit postcodes are known: 3511 AB lies in "
                                   "postcode area 3511.")
