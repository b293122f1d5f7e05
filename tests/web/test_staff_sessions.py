"""A staff session ends for real: at log-out and password change everywhere (a saved cookie
replayed afterwards gets the login page), after idle and absolute timeouts, and when the
cookie turns up at another client. No remember-me cookie opens the console."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from flask_login.utils import encode_cookie
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.security import check_password_hash

from core.models import AuditEvent, User
from core.seed import DEMO_PASSWORD, seed_demo
from core.settings import Settings
from outbound.runtime import Runtime
from tests.web.helpers import DEMO_EMAIL, csrf_token, login, login_as
from web import create_app
from web.auth import PASSWORD_MAX, PASSWORD_MIN, PasswordForm
from web.i18n import ENGLISH

NEW_PASSWORD = "paard-batterij-nietje"


def _cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def _replay(app: Flask, cookie: str) -> FlaskClient:
    """A new browser presenting COOKIE, as an attacker who saved a copy would."""
    other = app.test_client()
    other.set_cookie("session", cookie)
    return other


def _logged_in(client: FlaskClient) -> bool:
    response = client.get("/")
    if response.status_code == 302:
        assert response.headers["Location"].startswith("/login")
        return False
    assert response.status_code == 200
    return True


def _logout(client: FlaskClient) -> None:
    assert client.post("/logout", data={"csrf_token": csrf_token(client, "/")}).status_code == 302


def _change(client: FlaskClient, current: str = DEMO_PASSWORD, new: str = NEW_PASSWORD,
            repeat: str | None = None):
    return client.post("/wachtwoord", data={
        "current": current, "new": new, "repeat": new if repeat is None else repeat,
        "csrf_token": csrf_token(client, "/wachtwoord")})


def _user(db: Session, role: str = "centralist") -> User:
    db.expire_all()
    return db.scalar(select(User).where(User.email == DEMO_EMAIL[role]))


# --- log-out ------------------------------------------------------------------------------

def test_a_cookie_saved_before_logging_out_gets_the_login_page(app: Flask,
                                                               client: FlaskClient) -> None:
    login_as(client, "centralist")
    saved = _cookie(client)
    _logout(client)
    assert not _logged_in(_replay(app, saved))


def test_logging_out_ends_the_user_s_sessions_in_every_browser(app: Flask, client: FlaskClient,
                                                               db: Session) -> None:
    login_as(client, "centralist")
    elsewhere = login_as(app.test_client(), "centralist")
    colleague = login_as(app.test_client(), "admin")
    _logout(client)
    assert not _logged_in(elsewhere)
    assert _logged_in(colleague)
    assert _user(db).session_key is None
    assert _logged_in(login_as(client, "centralist"))


# --- password change ----------------------------------------------------------------------

def test_changing_the_password_ends_every_other_session_and_keeps_this_one(
        app: Flask, client: FlaskClient, db: Session) -> None:
    login_as(client, "centralist")
    elsewhere = login_as(app.test_client(), "centralist")
    saved = _cookie(client)
    page = client.get("/wachtwoord").get_data(as_text=True)
    assert 'autocomplete="current-password"' in page and 'autocomplete="new-password"' in page
    response = _change(client)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert "Uw wachtwoord is gewijzigd." in client.get("/").get_data(as_text=True)
    assert _logged_in(client)
    assert not _logged_in(elsewhere)
    assert not _logged_in(_replay(app, saved))
    assert check_password_hash(_user(db).password_hash, NEW_PASSWORD)
    [event] = db.scalars(select(AuditEvent).where(AuditEvent.verb == "password_change")).all()
    assert event.actor == DEMO_EMAIL["centralist"] and NEW_PASSWORD not in str(event.details)
    _logout(client)
    assert login(client, DEMO_EMAIL["centralist"]).status_code == 401
    assert login(client, DEMO_EMAIL["centralist"], NEW_PASSWORD).status_code == 302


@pytest.mark.parametrize(("current", "new", "repeat", "field", "message"), [
    ("not-it-at-all", NEW_PASSWORD, None, "current", "Dit is niet uw huidige wachtwoord."),
    (DEMO_PASSWORD, "kort", None, "new", "Kies een wachtwoord van 12 tot 200 tekens."),
    (DEMO_PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "x", "repeat",
     "De twee nieuwe wachtwoorden verschillen."),
    (DEMO_PASSWORD, DEMO_PASSWORD, None, "new", "Kies een ander wachtwoord dan het huidige."),
])
def test_a_refused_password_change_says_why_and_changes_nothing(
        client: FlaskClient, db: Session, current: str, new: str, repeat: str | None,
        field: str, message: str) -> None:
    login_as(client, "centralist")
    before = _user(db)
    hash_before, key_before = before.password_hash, before.session_key
    response = _change(client, current, new, repeat)
    assert response.status_code == 400 and message in response.get_data(as_text=True)
    after = _user(db)
    assert (after.password_hash, after.session_key) == (hash_before, key_before)
    assert _logged_in(client)
    failed = db.scalars(select(AuditEvent.verb).where(
        AuditEvent.verb == "password_change_failed")).all()
    assert len(failed) == (1 if field == "current" else 0)


def test_the_password_form_needs_a_login_and_its_csrf_token(client: FlaskClient,
                                                            db: Session) -> None:
    assert client.get("/wachtwoord").headers["Location"].startswith("/login")
    login_as(client, "centralist")
    response = client.post("/wachtwoord", data={"current": DEMO_PASSWORD, "new": NEW_PASSWORD,
                                                "repeat": NEW_PASSWORD})
    assert response.status_code == 400
    assert check_password_hash(_user(db).password_hash, DEMO_PASSWORD)


def test_guessing_the_current_password_pauses_after_five_tries(client: FlaskClient,
                                                                db: Session) -> None:
    """A session taken over (a console left open) must not become a password oracle."""
    login_as(client, "centralist")
    for _ in range(5):
        assert _change(client, current="guess-guess-guess").status_code == 400
    response = _change(client)
    assert response.status_code == 429 and "Te veel pogingen" in response.get_data(as_text=True)
    assert check_password_hash(_user(db).password_hash, DEMO_PASSWORD)
    assert db.scalar(select(AuditEvent).where(AuditEvent.verb == "password_change_throttled"))


def test_the_menu_offers_the_password_change(client: FlaskClient) -> None:
    page = login_as(client, "municipality_officer").get("/").get_data(as_text=True)
    assert 'href="/wachtwoord"' in page
    assert "Change password" in client.get("/?lang=en").get_data(as_text=True)


# --- timeouts -----------------------------------------------------------------------------

def test_an_idle_session_ends_after_thirty_minutes(client: FlaskClient) -> None:
    login_as(client, "centralist")
    with client.session_transaction() as session:
        session["staff_seen"] -= 29 * 60
    assert _logged_in(client)
    with client.session_transaction() as session:
        session["staff_seen"] -= 31 * 60
    assert not _logged_in(client)
    assert "Uw sessie is verlopen; log opnieuw in." in client.get("/login").get_data(as_text=True)


def test_a_busy_session_still_ends_twelve_hours_after_logging_in(client: FlaskClient) -> None:
    login_as(client, "centralist")
    with client.session_transaction() as session:
        session["staff_since"] -= 11 * 3600 + 59 * 60
    assert _logged_in(client)
    with client.session_transaction() as session:
        session["staff_since"] -= 2 * 60
    assert not _logged_in(client)


def test_the_timeouts_are_settings(settings: Settings, engine: Engine,
                                   sessions: sessionmaker[Session],
                                   redis_client: redis.Redis) -> None:
    seed_demo(sessions, size=0)
    short = replace(settings, staff_idle_minutes=5, staff_session_hours=1)
    app = create_app(runtime=Runtime(short, engine, sessions, redis_client))
    client = login_as(app.test_client(), "centralist")
    with client.session_transaction() as session:
        session["staff_seen"] -= 6 * 60
    assert not _logged_in(client)
    login_as(client, "centralist")
    with client.session_transaction() as session:
        session["staff_since"] -= 61 * 60
    assert not _logged_in(client)


# --- cookies that open nothing ------------------------------------------------------------

def test_no_remember_me_cookie_is_issued_and_none_is_honoured(app: Flask, client: FlaskClient,
                                                               db: Session) -> None:
    response = login(client, DEMO_EMAIL["centralist"])
    assert not [c for c in response.headers.getlist("Set-Cookie")
                if c.startswith("remember_token=")]
    user = _user(db)
    with app.test_request_context():
        forged = encode_cookie(user.get_id())  # signed with our own key, for the live key
    stranger = app.test_client()
    stranger.set_cookie("remember_token", forged)
    assert not _logged_in(stranger)


def test_a_session_cookie_replayed_from_another_address_gets_the_login_page(
        app: Flask, client: FlaskClient) -> None:
    """Binding a session to its client must not trust X-Forwarded-For, which the attacker
    writes: here they even name the victim's address in it."""
    login_as(client, "centralist")  # from 127.0.0.1, the test client's address
    thief = _replay(app, _cookie(client))  # the same browser string, too
    response = thief.get("/", headers={"X-Forwarded-For": "127.0.0.1"},
                         environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_a_session_works_on_from_its_own_address_and_browser(client: FlaskClient) -> None:
    login_as(client, "centralist")
    for _ in range(3):
        assert _logged_in(client)


def test_every_password_page_text_has_an_english_translation() -> None:
    template = (Path(__file__).parents[2] / "web" / "templates" / "password.html").read_text()
    texts = set(re.findall(r"_\('([^']+)'", template))
    for field in (PasswordForm.current, PasswordForm.new, PasswordForm.repeat):
        texts.add(field.args[0])
        texts.update(v.message for v in field.kwargs["validators"] if v.message)
    texts.update(["Dit is niet uw huidige wachtwoord.",
                  "Kies een ander wachtwoord dan het huidige.",
                  "Uw wachtwoord is gewijzigd. Overal waar u nog was ingelogd, bent u uitgelogd.",
                  "Uw sessie is verlopen; log opnieuw in."])
    assert sorted(text for text in texts if text not in ENGLISH) == []
    assert f"van {PASSWORD_MIN} tot {PASSWORD_MAX} tekens" in PasswordForm.new.kwargs[
        "validators"][1].message
