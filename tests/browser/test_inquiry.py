"""A neighbourhood inquiry in Chromium: the officer asks, a participant answers through the
personal link in the e-mail, the officer reads the answer and sends an update."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import (
    DUTCH,
    ENGLISH,
    NEIGHBOURS,
    Screenshot,
    System,
    fresh_page,
    log_in,
)
from tests.browser.maps import UTRECHT, AreaPicker

TITLE = "Inbraken in de binnenstad"
QUESTION = ("In de nacht van zaterdag op zondag is in de binnenstad in drie woningen "
            "ingebroken. Heeft u iets gezien of gehoord, of heeft u camerabeelden?")
ANSWER = "Rond half vier zag ik twee mannen met een ladder door de Lange Nieuwstraat lopen."
UPDATE = "Dank voor de vele reacties. Er zijn twee verdachten aangehouden."
LINK = re.compile(r"https?://\S+/reactie/\S+")


def asking(message: dict[str, str]) -> bool:
    """An e-mail of the inquiry itself (in Dutch or English), not its update."""
    return TITLE in message["body"] and "/reactie/" in message["body"]


def reaction_link(message: dict[str, str], system: System) -> str:
    """The personal link in an inquiry e-mail; in the demo PUBLIC_URL is the web server's own
    address, so the link works as it stands."""
    found = LINK.search(message["body"])
    assert found, message["body"]
    assert found[0].startswith(f"{system.url}/reactie/"), found[0]
    return found[0]


def test_an_officer_asks_the_neighbourhood_and_reads_the_answers(
        page: Page, browser: Browser, system: System,
        screenshot: Screenshot) -> None:
    log_in(page, "gemeente@example.org")
    page.goto("/gemeente/")
    page.click("#new-inquiry")
    expect(page.locator("#area-map")).to_have_attribute("data-state", "ready")
    page.fill("#title_nl", TITLE)
    expect(page.locator("#area-bound")).to_contain_text("binnen de gemeente Utrecht")
    picker = AreaPicker(page)
    picker.click_centre(*UTRECHT, within_m=3000)
    page.click("#area-radius-5000")  # reaches into Nieuwegein and Stichtse Vecht
    picker.click_centre(*UTRECHT, within_m=150)
    page.click("#save-draft")
    expect(page.locator("#text_nl-error")).to_be_visible()
    expect(page.locator("#area-error")).to_contain_text("binnen uw gemeente")
    expect(page.locator("#form-errors")).to_be_visible()
    expect(page.locator("#title_nl")).to_have_value(TITLE)
    expect(page.locator("#area-radius")).to_have_value("5000")

    page.click("#area-radius-2000")
    page.fill("#text_nl", QUESTION)
    page.click("#save-draft")
    expect(page.locator("#action-title")).to_have_text(TITLE)
    expect(page.locator("#action-status")).to_have_attribute("data-status", "draft")
    expect(page.locator("#municipal-area")).to_have_attribute("data-state", "ready")
    expect(page.locator("#message-sample-nl")).to_contain_text(QUESTION)
    recipients = int(page.locator("#preview-recipients").get_attribute("data-count") or 0)
    assert recipients > 0
    expect(page.locator("#preview-channel-email")).to_have_attribute("data-count",
                                                                      re.compile(r"^[1-9]"))
    page.click("#send-button")
    expect(page.locator("main")).to_contain_text("Het versturen is begonnen.")
    expect(page.locator("#action-status")).to_have_attribute("data-status", "active")
    expect(page.locator("#no-reactions")).to_be_visible()

    # The neighbours' e-mails, picked by address: the demo participants' e-mails go out in
    # no fixed order, some in English, and some wait for the end of their quiet hours.
    [dutch] = system.wait_sent(lambda m: asking(m) and m["to"] == DUTCH.email)
    [english] = system.wait_sent(lambda m: asking(m) and m["to"] == ENGLISH.email)
    assert (dutch["language"], english["language"]) == ("nl", "en")
    assert reaction_link(english, system).endswith("?lang=en")
    mails = [m for m in system.sent() if asking(m)]
    assert all(m["channel"] == "email" for m in mails)
    assert all(m["to"].endswith("@example.org") for m in mails)
    links = {LINK.search(m["body"])[0] for m in mails}  # type: ignore[index]
    assert len(links) == len(mails), "two recipients share a personal link"
    link = reaction_link(dutch, system)

    with fresh_page(browser, system) as participant:
        participant.goto(link)
        expect(participant.locator("#inquiry-title")).to_have_text(TITLE)
        expect(participant.locator("#inquiry-question")).to_have_text(QUESTION)
        participant.fill("#reaction-text", ANSWER)
        participant.fill("#reaction-contact", "06 98765432")
        screenshot(participant, "reaction-form")
        participant.fill("#reaction-text", "  ")
        participant.click("#reaction-submit")
        expect(participant.locator("#reaction-text-error")).to_have_text("Vul uw reactie in.")
        expect(participant.locator("#reaction-contact")).to_have_value("06 98765432")
        participant.fill("#reaction-text", ANSWER)
        participant.click("#reaction-submit")
        expect(participant.locator("#reaction-message")).to_have_attribute("data-state", "thanks")
        participant.goto(link)
        expect(participant.locator("#reaction-message")).to_have_attribute("data-state",
                                                                            "already")
        participant.goto(link.rsplit("/", 1)[0] + "/not-a-token")
        expect(participant.locator("#reaction-message")).to_have_attribute("data-state",
                                                                            "invalid")

    page.reload()
    reaction = page.locator("[data-testid=reaction]")
    expect(reaction).to_have_count(1)
    expect(reaction.locator(".reaction-text")).to_have_text(ANSWER)
    expect(reaction.locator(".reaction-contact")).to_have_text("+31698765432")
    expect(page.locator("#count-reacted")).to_have_attribute("data-count", "1")

    page.click("#update-button")
    expect(page.locator("#update_nl-error")).to_be_visible()
    page.fill("#update_nl", UPDATE)
    page.click("#update-button")
    expect(page.locator("#update-sent")).to_be_visible()
    expect(page.locator("#update-text-nl")).to_have_text(UPDATE)
    expect(page.locator("#update-form")).to_have_count(0)
    screenshot(page, "inquiry-officer")
    for neighbour in NEIGHBOURS:  # reached, and without quiet hours: they get it now
        system.wait_sent(lambda m, to=neighbour.email: UPDATE in m["body"] and m["to"] == to)
    updates = [m for m in system.sent() if UPDATE in m["body"]]
    asked = {m["to"] for m in system.sent() if asking(m)}
    assert {m["to"] for m in updates} <= asked
    assert len(updates) == len({m["to"] for m in updates}), "an update went twice"
