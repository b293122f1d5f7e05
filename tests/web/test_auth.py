
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import AuditEvent
from core.seed import DEMO_PASSWORD
from tests.web.helpers import csrf_token, login, login_as


def test_the_login_page_answers_in_dutch_with_a_csrf_token(client: FlaskClient) -> None:
    response = client.get("/login")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<h1>Inloggen</h1>" in page and 'lang="nl"' in page
    assert "csrf_token" in page


def test_the_login_page_is_available_in_english(client: FlaskClient) -> None:
    page = client.get("/login?lang=en").get_data(as_text=True)
    assert "<h1>Log in</h1>" in page and 'lang="en"' in page


def test_the_console_asks_for_a_login_first(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_a_demo_user_logs_in_and_sees_role_and_organisation(client: FlaskClient,
                                                            db: Session) -> None:
    response = login(client, "centralist@example.org", DEMO_PASSWORD)
    assert response.status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert "Demo Centralist" in page and "Politie Midden-Nederland" in page
    assert db.scalar(select(AuditEvent).where(AuditEvent.verb == "login")).actor == \
        "centralist@example.org"


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(client: FlaskClient,
                                                                  db: Session) -> None:
    wrong = login(client, "centralist@example.org", "guess")
    unknown = login(client, "nobody@example.org", "guess")
    assert wrong.status_code == unknown.status_code == 401
    assert "Onjuist e-mailadres of wachtwoord." in wrong.get_data(as_text=True)
    assert wrong.get_data(as_text=True).count("Onjuist") == 1
    failures = db.scalars(select(AuditEvent).where(AuditEvent.verb == "login_failed")).all()
    assert {f.actor for f in failures} == {"centralist@example.org", "nobody@example.org"}


def test_a_login_without_csrf_token_is_refused(client: FlaskClient) -> None:
    response = client.post("/login", data={"email": "centralist@example.org",
                                           "password": DEMO_PASSWORD})
    assert response.status_code == 400
    assert client.get("/").status_code == 302


def test_empty_fields_keep_what_was_typed_and_say_what_is_missing(client: FlaskClient) -> None:
    response = client.post("/login", data={"email": "centralist@example.org", "password": "",
                                           "csrf_token": csrf_token(client)})
    page = response.get_data(as_text=True)
    assert "Vul dit veld in." in page
    assert 'value="centralist@example.org"' in page


def test_logging_out_needs_a_post_withcsrf_token(client: FlaskClient) -> None:
    login(client, "centralist@example.org", DEMO_PASSWORD)
    assert client.get("/logout").status_code == 405
    token = csrf_token(client, "/")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/").status_code == 302


def test_the_session_cookie_is_httponly_and_samesite(client: FlaskClient) -> None:
    response = login(client, "centralist@example.org", DEMO_PASSWORD)
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_too_many_failures_pause_the_address_even_with_the_right_password(
        client: FlaskClient, db: Session) -> None:
    for _ in range(5):
        assert login(client, "centralist@example.org", "guess").status_code == 401
    throttled = login(client, "centralist@example.org", DEMO_PASSWORD)
    assert throttled.status_code == 429
    assert "Te veel pogingen" in throttled.get_data(as_text=True)
    assert client.get("/").status_code == 302
    assert db.scalar(select(AuditEvent).where(AuditEvent.verb == "login_throttled"))
    assert login(client, "gemeente@example.org", DEMO_PASSWORD).status_code == 302


def test_failed_logins_from_one_ipv6_64_count_together(client: FlaskClient) -> None:
    for n in range(20):
        client.environ_base["REMOTE_ADDR"] = f"2001:db8:9:1::{n + 1:x}"
        assert login(client, f"nobody{n}@example.org", "guess").status_code == 401
    client.environ_base["REMOTE_ADDR"] = "2001:db8:9:1:aaaa:bbbb:cccc:dddd"
    assert login(client, "centralist@example.org", DEMO_PASSWORD).status_code == 429
    client.environ_base["REMOTE_ADDR"] = "2001:db8:9:2::1"
    assert login(client, "centralist@example.org", DEMO_PASSWORD).status_code == 302


def test_the_menu_shows_only_what_the_role_may_use(client: FlaskClient) -> None:
    page = login_as(client, "municipality_officer").get("/").get_data(as_text=True)
    assert "Auditlog" not in page


def test_every_page_sends_the_security_headers(client: FlaskClient) -> None:
    response = client.get("/login")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "img-src 'self' data: blob:;" in policy  # no tile server configured: no other host
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Strict-Transport-Security" not in response.headers  # not behind HTTPS here


def test_the_map_tile_server_is_the_only_other_image_source(settings, engine, sessions,
                                                            redis_client) -> None:
    from dataclasses import replace

    from outbound.runtime import Runtime
    from web import create_app

    tiled = replace(settings, map_tiles_url="https://{s}.tile.example.org/{z}/{x}/{y}.png",
                    session_cookie_secure=True)
    app = create_app(runtime=Runtime(tiled, engine, sessions, redis_client))
    response = app.test_client().get("/login")
    assert "img-src 'self' data: blob: https://*.tile.example.org;" in \
        response.headers["Content-Security-Policy"]
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
