"""A participant in Chromium: sign up, verify by SMS code, choose, add a place, leave."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import Screenshot, System

PHONE = "06 12 34 56 78"
E164 = "+31612345678"


def sms_code(system: System, e164: str, after: int = 0) -> str:
    """The code in the newest SMS to E164, once the worker has sent more than AFTER."""
    sent = system.wait_sent(lambda m: m["to"] == e164 and "Burgernet-code" in m["body"],
                            count=after + 1, seconds=30)
    found = re.search(r"Burgernet-code is (\d{6})\.", sent[-1]["body"])
    assert found, sent[-1]["body"]
    return found[1]


def test_a_participant_signs_up_chooses_adds_a_place_and_deletes_their_data(
        page: Page, system: System, screenshot: Screenshot) -> None:
    page.goto("/deelnemen/")
    page.click("#signup-link")
    expect(page.locator("#signup-form")).to_be_visible()
    page.fill("#phone", PHONE)
    page.fill("#postcode", "3511")
    page.check("#consent")
    screenshot(page, "portal-signup")
    page.fill("#phone", "06 123")
    page.uncheck("#consent")
    page.click("#signup-submit")
    expect(page.locator("[data-testid=error-phone]")).to_be_visible()
    expect(page.locator("[data-testid=error-consent]")).to_have_text(
        "Zonder uw toestemming kunnen wij u niet aanmelden.")
    expect(page.locator("#postcode")).to_have_value("3511")

    page.fill("#phone", PHONE)
    page.check("#language-0")
    page.check("#consent")
    page.click("#signup-submit")
    expect(page.locator("#verify-form")).to_be_visible()
    expect(page.locator("#code-sent")).to_contain_text("06 12345678")
    code = sms_code(system, E164)

    wrong = "000000" if code != "000000" else "111111"
    page.fill("#code", wrong)
    page.click("#verify-submit")
    expect(page.locator("#form-error")).to_have_text(re.compile(
        r"^Deze code klopt niet\. U kunt het nog \d+ keer proberen\.$"))
    page.fill("#code", code)
    page.click("#verify-submit")
    expect(page).to_have_url(re.compile(r"/deelnemen/mijn$"))
    expect(page.locator("main")).to_contain_text("Welkom bij Burgernet! Uw nummer is bevestigd.")
    expect(page.locator("#status")).to_have_attribute("data-status", "verified")
    expect(page.locator("#my-number")).to_contain_text("06 12345678")
    expect(page.locator("[data-testid=place-home]")).to_contain_text("3511")

    page.check("[data-testid=channel-email]")
    page.fill("#prefs-email", "")
    page.click("#preferences-submit")
    expect(page.locator("[data-testid=error-prefs-email]")).to_have_text(
        "Voor berichten per e-mail hebben wij uw e-mailadres nodig.")
    expect(page.locator("[data-testid=channel-email]")).to_be_checked()
    page.fill("#prefs-email", "deelnemer.browser@example.org")
    page.fill("#prefs-quiet_email_from", "22:00")
    page.fill("#prefs-quiet_email_to", "07:30")
    page.click("#preferences-submit")
    expect(page.locator("main")).to_contain_text("Uw voorkeuren zijn opgeslagen.")
    expect(page.locator("[data-testid=channel-email]")).to_be_checked()
    expect(page.locator("[data-testid=channel-sms]")).to_be_checked()
    expect(page.locator("#prefs-email")).to_have_value("deelnemer.browser@example.org")
    expect(page.locator("#prefs-quiet_email_from")).to_have_value("22:00")
    expect(page.locator("#prefs-quiet_email_to")).to_have_value("07:30")

    page.select_option("#place-kind", "work")
    page.fill("#place-postcode", "3584 CS")
    page.click("#place-submit")
    expect(page.locator("main")).to_contain_text("De plaats is opgeslagen.")
    expect(page.locator("[data-testid=place-work]")).to_contain_text("3584 Utrecht")
    push = page.locator("#push-enable")
    if push.count():
        push.click()  # headless Chromium has no push service: the page says so, calmly
        expect(page.locator("#push-status")).to_have_class(re.compile(r"\berror\b"))
        expect(push).to_be_enabled()
    else:
        expect(page.locator("#push-unavailable")).to_be_visible()
    screenshot(page, "portal-participant")

    page.click("#delete-link")
    page.click("#delete-submit")
    expect(page.locator("[data-testid=error-confirm]")).to_be_visible()
    page.check("#confirm")
    page.click("#delete-submit")
    expect(page).to_have_url(re.compile(r"/deelnemen/$"))
    expect(page.locator("main")).to_contain_text("Uw gegevens zijn verwijderd.")
    page.goto("/deelnemen/mijn")
    expect(page.locator("#signup-form, #login-form")).to_be_visible()
