"""Statistics and the audit log in Chromium, after an action of this module's own (so the
module does not depend on the order of the others)."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import Screenshot, System, fresh_page, log_in

TITLE = "Gestolen bestelbus, wit, met open laadklep"
CHARTS = ("months", "success", "calls", "municipalities", "delivery")


@dataclass(frozen=True)
class Ended:
    id: int
    #: The month (Dutch time) the action started in: one of two when it started at midnight.
    months: frozenset[str]


@pytest.fixture(scope="module")
def ended_action(browser: Browser, system: System) -> Ended:
    """A vehicle action a centralist started and ended (typing the centre, without the map)."""
    with fresh_page(browser, system) as page:
        log_in(page, "centralist@example.org")
        page.goto("/console/actions/new")
        page.select_option("#kind", "vehicle")
        page.fill("#title_nl", TITLE)
        page.fill("#area-lat", "52.0907")
        page.fill("#area-lon", "5.1214")
        page.fill("#area-radius", "1000")
        page.click("#save-draft")
        expect(page).to_have_url(re.compile(r"/console/actions/\d+$"))
        action_id = int(page.url.rsplit("/", 1)[1])
        before = this_month()
        page.click("#start-action")
        expect(page.locator("#end-form")).to_be_visible()
        months = frozenset({before, this_month()})
        page.select_option("#outcome", "found")
        page.click("#end-action")
        expect(page.locator("#action-status")).to_have_text("Beëindigd")
    return Ended(action_id, months)


def this_month() -> str:
    return datetime.now(ZoneInfo("Europe/Amsterdam")).strftime("%Y-%m")


def test_the_statistics_draw_their_charts_and_export_csv(
        page: Page, ended_action: Ended, screenshot: Screenshot) -> None:
    log_in(page, "beheer@example.org")
    page.click("header nav >> text=Statistiek")
    expect(page.locator("h1")).to_have_text("Statistiek")
    for name in CHARTS:
        expect(page.locator(f"#chart-{name}")).to_have_attribute("data-drawn", "true")
    footer = page.locator("#table-acties-per-maand tfoot")
    expect(footer).to_be_visible()
    assert int(footer.locator("td").last.inner_text()) >= 1
    expect(page.locator("#stats-scope")).to_contain_text("alle organisaties")
    screenshot(page, "statistics", height=1500)

    with page.expect_download() as download:
        page.click("#csv-acties-per-maand")
    assert download.value.suggested_filename.startswith("acties-per-maand_")
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))  # Dutch Excel's separator
    assert rows[0][0] == "Maand" and rows[0][-1] == "Totaal"
    assert sum(int(row[-1]) for row in rows if row[0] in ended_action.months) >= 1


def test_the_audit_log_shows_who_did_what_and_filters_by_verb(
        page: Page, ended_action: Ended, screenshot: Screenshot) -> None:
    log_in(page, "beheer@example.org")
    page.goto("/beheer/audit")
    rows = page.locator("[data-testid=audit-row]")
    expect(rows.first).to_be_visible()
    screenshot(page, "audit-log", height=1300)

    page.fill("#audit-verb", "start")
    page.click("#audit-apply")
    expect(page).to_have_url(re.compile(r"handeling=start"))
    expect(page.locator("#audit-verb")).to_have_value("start")
    verbs = rows.locator("td:nth-child(3)").all_inner_texts()
    assert verbs and set(verbs) == {"start"}
    ours = rows.filter(has=page.locator("td:nth-child(4)", has_text=re.compile(
        rf"^action\s+{ended_action.id}$")))
    expect(ours).to_have_count(1)
    expect(ours.locator("td:nth-child(2)")).to_contain_text("centralist@example.org")

    page.fill("#audit-verb", "end")
    page.click("#audit-apply")
    ours = rows.filter(has=page.locator("td:nth-child(4)", has_text=re.compile(
        rf"^action\s+{ended_action.id}$")))
    expect(ours).to_have_count(1)
    expect(ours).to_contain_text("found")
    assert set(rows.locator("td:nth-child(3)").all_inner_texts()) == {"end"}


def test_only_an_admin_reads_the_audit_log(page: Page, system: System) -> None:
    log_in(page, "centralist@example.org")
    response = page.goto("/beheer/audit")
    assert response is not None and response.status == 403
    expect(page.locator("[data-testid=audit-row]")).to_have_count(0)
