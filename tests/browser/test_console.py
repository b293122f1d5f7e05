"""A centralist's whole action in Chromium: create, correct, preview, start, watch, end."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from PIL import Image, ImageDraw
from playwright.sync_api import Page, expect

from tests.browser.conftest import DUTCH, ENGLISH, NEIGHBOURS, Screenshot, System, log_in
from tests.browser.maps import UTRECHT, AreaPicker, metres

TITLE = "Verdachte van inbraak gevlucht"
TITLE_EN = "Burglary suspect fled"
OUTCOME_TEXT = "Dankzij een tip uit de buurt is de verdachte bij het station aangehouden"


def jpeg(path: Path) -> Path:
    """A small photo as a phone would take it: a figure in a dark coat with a red backpack,
    and the camera's model in its EXIF."""
    image = Image.new("RGB", (320, 240), (196, 214, 230))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 170, 320, 240), fill=(120, 120, 112))
    draw.ellipse((146, 38, 178, 72), fill=(222, 184, 150))
    draw.rectangle((138, 74, 186, 160), fill=(40, 44, 52))
    draw.rectangle((180, 84, 204, 132), fill=(180, 30, 36))
    draw.rectangle((142, 160, 158, 214), fill=(30, 34, 60))
    draw.rectangle((166, 160, 182, 214), fill=(30, 34, 60))
    exif = Image.Exif()
    exif[0x0110] = "Demo Camera"
    image.save(path, "JPEG", exif=exif)
    return path


def number(page: Page, selector: str) -> int:
    return int(page.locator(selector).inner_text())


def test_a_centralist_creates_starts_watches_and_ends_an_action(
        page: Page, system: System, tmp_path: Path,
        screenshot: Screenshot) -> None:
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    log_in(page, "centralist@example.org")
    page.goto("/console/")
    page.click("#new-action")
    expect(page).to_have_url(re.compile(r"/console/actions/new$"))
    expect(page.locator("#area-map")).to_have_attribute("data-state", "ready")

    page.select_option("#kind", "suspect")
    expect(page.locator("#national")).to_be_disabled()
    page.select_option("#urgency", "urgent")
    page.select_option("#meldkamer", "MN")
    page.fill("#description_nl", "Man, ongeveer 30 jaar, donkere jas, rode rugzak.")
    page.fill("#instruction_nl", "Benader hem niet; bel de meldkamer.")
    page.fill("#title_en", TITLE_EN)
    page.fill("#description_en", "Man, about 30, dark coat, red backpack.")
    page.fill("#instruction_en", "Do not approach him; call the control room.")
    picker = AreaPicker(page)
    picker.click_centre(*UTRECHT, within_m=3000)  # the whole country is on the map: aim roughly
    page.click("#area-radius-2000")  # the map zooms in on the circle
    expect(page.locator("#area-radius")).to_have_value("2000")
    centre = picker.click_centre(*UTRECHT, within_m=60)
    screenshot(page, "action-form")

    page.click("#save-draft")
    expect(page.locator("#form-errors")).to_be_visible()
    expect(page.locator("#title_nl-error")).to_be_visible()
    expect(page.locator("#description_nl")).to_have_value(
        "Man, ongeveer 30 jaar, donkere jas, rode rugzak.")
    expect(page.locator("#title_en")).to_have_value(TITLE_EN)
    expect(page.locator("#kind")).to_have_value("suspect")
    expect(page.locator("#area-lat")).to_have_value(f"{centre[0]:.5f}")
    expect(page.locator("#area-lon")).to_have_value(f"{centre[1]:.5f}")
    expect(page.locator("#area-radius")).to_have_value("2000")
    expect(page.locator("#area-map")).to_have_attribute("data-state", "ready")

    page.fill("#title_nl", TITLE)
    page.set_input_files("#photo", str(jpeg(tmp_path / "verdachte.jpg")))
    page.click("#save-draft")
    expect(page).to_have_url(re.compile(r"/console/actions/\d+$"))
    action_id = int(page.url.rsplit("/", 1)[1])
    expect(page.locator("#action-title")).to_contain_text(TITLE)
    expect(page.locator("#action-status")).to_have_text("Concept")
    expect(page.locator("#summary-area")).to_contain_text("Cirkel van 2000 m")
    photo = page.locator("#action-photo")
    expect(photo).to_be_visible()
    assert photo.evaluate("image => image.complete && image.naturalWidth") == 320
    expect(page.locator("#action-area-map")).to_have_attribute("data-state", "ready")
    expect(page.locator("#preview-summary")).to_contain_text("deelnemers")
    sms = int(page.locator("#preview-channel-sms [data-count]").inner_text())
    assert sms > 0
    messages = sum(int(cell.inner_text()) for cell in
                   page.locator("#preview-channels [data-count]").all())
    expect(page.locator("#preview-municipalities")).to_contain_text("Utrecht")
    expect(page.locator("#preview-sms-nl")).to_contain_text(TITLE)
    expect(page.locator("#preview-sms-en")).to_contain_text(TITLE_EN)
    screenshot(page, "action-preview")

    page.click("#start-action")
    expect(page.locator("main")).to_contain_text("De actie is gestart.")
    page.evaluate("window.sameDocument = true")
    live = page.locator("#live")
    expect(live).to_have_attribute("data-polls", re.compile(r"^\d+$"))
    expect(page.locator("#total-deliveries")).to_have_text(str(messages), timeout=30_000)
    expect(page.locator("#count-sms-sent")).to_have_text(str(sms), timeout=30_000)
    assert float(page.locator("#rate-sms").inner_text()) > 0  # over the last ten seconds
    expect(page.locator("#live-status")).to_have_text("Actief")
    polls = int(live.get_attribute("data-polls") or 0)
    page.wait_for_function("n => Number(document.getElementById('live').dataset.polls) > n",
                           arg=polls + 1)
    assert page.evaluate("window.sameDocument") is True, "the live page reloaded"
    assert number(page, "#calls-total") == 0 and number(page, "#tips-total") == 0
    screenshot(page, "action-live")

    alerts = system.wait_sent(lambda m: m["channel"] == "sms" and (
        TITLE in m["body"] or TITLE_EN in m["body"]), count=sms)
    assert len(alerts) == sms
    assert len({m["to"] for m in alerts}) == sms, "an SMS went twice to one number"
    to_neighbours = {m["to"]: m for m in alerts if m["to"] in {n.phone for n in NEIGHBOURS}}
    assert to_neighbours[DUTCH.phone]["body"].startswith(f"Burgernet: {TITLE}.")
    assert to_neighbours[ENGLISH.phone]["body"].startswith(f"Burgernet: {TITLE_EN}.")

    page.select_option("#outcome", "arrested")
    page.fill("#outcome-text", OUTCOME_TEXT)
    page.click("#end-action")
    expect(page.locator("main")).to_contain_text("De actie is beëindigd")
    expect(page.locator("#action-status")).to_have_text("Beëindigd")
    expect(page.locator("#action-outcome")).to_have_text("Aangehouden")
    expect(page.locator("#outcome-text-sent")).to_have_text(OUTCOME_TEXT)
    expect(page.locator("#end-form")).to_have_count(0)

    # The live page goes on counting: the results join the alerts. A result is not urgent, so
    # whoever has quiet hours now gets it afterwards; until then it waits in the queue.
    page.wait_for_function("n => Number(document.getElementById('total-deliveries')"
                           ".textContent) > n", arg=messages)
    results = number(page, "#total-deliveries") - messages
    reached = {m["to"] for m in alerts}
    for neighbour in NEIGHBOURS:  # without quiet hours: theirs go at once, at any hour
        system.wait_sent(lambda m, to=neighbour.phone: OUTCOME_TEXT in m["body"]
                         and m["to"] == to)
    for _ in range(150):
        recorded = [m for m in system.sent() if OUTCOME_TEXT in m["body"]]
        waiting = sum(number(page, f"#count-{channel}-queued")
                      for channel in ("voice", "sms", "email", "push"))
        if len(recorded) + waiting == results:
            break
        page.wait_for_timeout(200)
    assert len(recorded) + waiting == results, (len(recorded), waiting, results)
    assert Counter(m["to"] for m in recorded).most_common(1)[0][1] == 1, "a result went twice"
    assert {m["to"] for m in recorded if m["channel"] == "sms"} <= reached
    for message in recorded:  # each in its recipient's language
        assert message["body"].startswith(
            f"Burgernet: the action '{TITLE_EN}' has ended: the suspect has been arrested."
            if message["language"] == "en" else
            f"Burgernet: de actie '{TITLE}' is beëindigd: de verdachte is aangehouden."), message
    assert {m["language"] for m in recorded if m["to"] in {DUTCH.phone, ENGLISH.phone}} == \
        {"nl", "en"}

    page.goto("/console/")
    row = page.locator(f"#action-row-{action_id}")
    expect(row).to_have_attribute("data-status", "ended")
    expect(row).to_contain_text(TITLE)
    expect(row).to_contain_text("Aangehouden")
    outside = {urlsplit(url).hostname for url in requests} - {"127.0.0.1"}
    assert not outside, f"the console loaded from outside loopback: {outside}"


def test_a_centralist_draws_a_polygon_and_sees_who_it_reaches(
        page: Page, screenshot: Screenshot) -> None:
    log_in(page, "centralist@example.org")
    page.goto("/console/actions/new")
    expect(page.locator("#area-map")).to_have_attribute("data-state", "ready")
    page.select_option("#kind", "missing_person")
    page.fill("#title_nl", "Vermiste man (82) met rollator")
    picker = AreaPicker(page)
    picker.click_centre(*UTRECHT, within_m=3000)
    page.click("#area-radius-5000")
    lat, lon = UTRECHT
    corners = [(lat + 0.02, lon - 0.03), (lat + 0.02, lon + 0.03),
               (lat - 0.02, lon + 0.03), (lat - 0.02, lon - 0.03)]
    view = picker.draw_polygon(corners)
    status = page.locator("[data-polygon-status]")
    expect(status).to_contain_text("4 punten")
    page.locator("#area-map").click(position=view.pixel(lat, lon + 0.06))  # a slip of the hand
    expect(status).to_contain_text("5 punten")
    page.click("#area-undo")
    expect(status).to_contain_text("4 punten")
    expect(page.locator("#area-polygon")).to_have_value("")
    page.click("#area-close-polygon")
    expect(status).to_have_text("Veelhoek gesloten.")
    expect(page.locator("#area-lat")).to_be_disabled()
    ring = json.loads(page.input_value("#area-polygon"))["coordinates"][0]
    assert len(ring) == 5 and ring[0] == ring[-1]
    assert all(metres((point[1], point[0]), corner) < 100  # a pixel here is some 35 m
               for point, corner in zip(ring, corners, strict=False))

    page.click("#save-draft")
    expect(page).to_have_url(re.compile(r"/console/actions/\d+$"))
    expect(page.locator("#summary-area")).to_have_text("Getekende veelhoek")
    expect(page.locator("#action-area-map")).to_have_attribute("data-state", "ready")
    assert int(page.locator("#preview-channel-sms [data-count]").inner_text()) > 0
    expect(page.locator("#preview-municipalities")).to_contain_text("Utrecht")
    expect(page.locator("#start-action")).to_be_enabled()
    action_id = int(page.url.rsplit("/", 1)[1])

    page.click("#back-to-list")
    row = page.locator(f"#action-row-{action_id}")
    expect(row).to_have_attribute("data-status", "draft")
    page.click("#filter-draft")
    expect(page.locator("#action-list tbody tr")).not_to_have_count(0)
    assert set(page.locator("#action-list tbody tr").evaluate_all(
        "rows => rows.map(row => row.dataset.status)")) == {"draft"}
    page.click("#filter-all")
    expect(row).to_be_visible()
    screenshot(page, "console-list")
