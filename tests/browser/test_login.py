"""Logging in and out of the console in Chromium."""

from playwright.sync_api import Page, expect

from tests.browser.conftest import log_in


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
