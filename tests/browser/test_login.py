"""Logging in and out of the console in Chromium."""

from playwright.sync_api import Browser, Page, expect

from core.seed import DEMO_PASSWORD
from tests.browser.conftest import System, fresh_page, log_in

NEW_PASSWORD = "paard-batterij-nietje"


def test_a_centralist_logs_in_and_out(page: Page, screenshot) -> None:
    page.goto("/login")
    screenshot(page, "login")
    log_in(page, "centralist@example.org")
    expect(page.locator("h1")).to_contain_text("Demo Centralist")
    expect(page.locator("main")).to_contain_text("Politie Midden-Nederland")
    page.click("text=Uitloggen")
    expect(page).to_have_url("/login")


def test_a_wrong_password_is_told_in_dutch_and_english(page: Page) -> None:
    log_in_failed = page.goto("/login")
    assert log_in_failed is not None and log_in_failed.status == 200
    page.fill("input[name=email]", "centralist@example.org")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_contain_text("Onjuist e-mailadres of wachtwoord.")
    page.click("header a[lang=en]")
    expect(page.locator("h1")).to_have_text("Log in")


def test_a_password_change_logs_the_user_out_in_their_other_browser(
        browser: Browser, system: System) -> None:
    """Two browsers of one admin: changing the password in one ends the other's session."""
    with fresh_page(browser, system) as laptop, fresh_page(browser, system) as desktop:
        log_in(laptop, "beheer@example.org")
        log_in(desktop, "beheer@example.org")
        laptop.click("[data-testid=nav-password]")
        expect(laptop.locator("h1")).to_have_text("Wachtwoord wijzigen")
        try:
            _change_password(laptop, DEMO_PASSWORD, NEW_PASSWORD)
            expect(laptop.locator("main")).to_contain_text("Uw wachtwoord is gewijzigd.")
            desktop.reload()
            expect(desktop).to_have_url("/login?next=%2F")
            expect(desktop.locator("h1")).to_have_text("Inloggen")
        finally:  # the other browser tests log in with the demo password
            laptop.goto("/wachtwoord")
            _change_password(laptop, NEW_PASSWORD, DEMO_PASSWORD)
        expect(laptop.locator("main")).to_contain_text("Uw wachtwoord is gewijzigd.")


def test_back_shows_no_page_of_a_session_ended_elsewhere(browser: Browser,
                                                        system: System) -> None:
    """A session ended on the server (a password change elsewhere, a timeout) leaves the
    browser's cookie as it was, so the cache's copy of a page still matched it: Back showed
    the audit log (addresses, who did what) without asking the server. Nothing of a session
    is kept in the cache now."""
    with fresh_page(browser, system) as laptop, fresh_page(browser, system) as shared:
        log_in(shared, "beheer@example.org")
        shared.goto("/beheer/audit")
        expect(shared.locator("h1")).to_have_text("Auditlog")
        shared.goto("/")
        log_in(laptop, "beheer@example.org")
        laptop.goto("/wachtwoord")
        try:
            _change_password(laptop, DEMO_PASSWORD, NEW_PASSWORD)
            shared.go_back()
            expect(shared.locator("h1")).to_have_text("Inloggen")
        finally:  # the other browser tests log in with the demo password
            laptop.goto("/wachtwoord")
            _change_password(laptop, NEW_PASSWORD, DEMO_PASSWORD)


def _change_password(page: Page, current: str, new: str) -> None:
    page.fill("#current", current)
    page.fill("#new", new)
    page.fill("#repeat", new)
    page.click("#password-submit")
    page.wait_for_url("**/")
