"""The reach map of the statistics page in Chromium: every municipality coloured by its
participants per 1,000 inhabitants, by the classes and numbers the page itself carries."""

from __future__ import annotations

import json
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.conftest import Screenshot, log_in


def colour_of(reach: dict[str, Any], view: str, value: float | None) -> str:
    """The class colour the legend gives VALUE (upper bounds inclusive)."""
    legend = reach["legends"][view]
    if value is None:
        return reach["unknown"]
    return next((colour for bound, colour in zip(legend["breaks"], legend["colours"],
                                                 strict=True) if value <= bound),
                legend["colours"][-1])


def test_the_reach_map_colours_municipalities_and_regions(page: Page,
                                                          screenshot: Screenshot) -> None:
    log_in(page, "centralist@example.org")
    page.goto("/statistiek/")
    expect(page.locator("#reach-map")).to_have_attribute("data-state", "ready")
    reach = json.loads(page.locator("#reach-data").text_content() or "{}")
    areas = page.locator("path.reach-area")
    expect(areas).to_have_count(342)

    municipalities = reach["figures"]["municipalities"]
    assert sum(figures[1] for figures in municipalities.values()) > 0
    fills = areas.evaluate_all(
        "paths => paths.map(p => [p.getAttribute('class'), p.getAttribute('fill')])")
    by_code = {next(c[3:] for c in classes.split() if c.startswith("gm-")): fill
               for classes, fill in fills}
    assert by_code == {code: colour_of(reach, "municipalities", figures[0])
                       for code, figures in municipalities.items()}
    assert len(set(by_code.values())) >= 3, "a choropleth of one colour says nothing"
    expect(page.locator("#reach-legend-municipalities")).to_be_visible()
    expect(page.locator("#reach-legend-regions")).to_be_hidden()

    utrecht = municipalities["GM0344"]
    page.locator("path.gm-GM0344").hover()
    tooltip = page.locator(".leaflet-tooltip")
    expect(tooltip).to_contain_text("Utrecht")
    expect(tooltip).to_contain_text(f"{utrecht[1]} deelnemers")
    screenshot(page, "statistics-map", selector="#deelnemers .reach")

    page.check("#reach-view-regions")
    expect(page.locator("#reach-map")).to_have_attribute("data-view", "regions")
    expect(page.locator("#reach-legend-regions")).to_be_visible()
    region = reach["figures"]["regions"][reach["region_of"]["GM0344"]]
    expect(page.locator("path.gm-GM0344")).to_have_attribute(
        "fill", colour_of(reach, "regions", region[0]))
    expect(page.locator("path.gm-GM0632")).to_have_attribute(  # Woerden: the same region
        "fill", colour_of(reach, "regions", region[0]))
