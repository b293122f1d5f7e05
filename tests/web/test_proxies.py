"""Behind TRUSTED_PROXIES reverse proxies the client is the address the proxies saw, so each
per-client limit pauses that client and not everyone behind the proxy; without one, nothing a
client writes in X-Forwarded-For counts. Cookies are Secure behind an https PUBLIC_URL."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.models import AuditEvent
from core.seed import DEMO_PASSWORD, seed_demo
from core.settings import Settings
from tests.web.helpers import DEMO_EMAIL, csrf_token

PROXY = "10.0.0.2"


def _app(sessions: sessionmaker[Session], make_app: Callable[..., Flask],
         **changes: object) -> Flask:
    seed_demo(sessions, size=0)
    return make_app(**changes)


def _login(app: Flask, email: str, password: str, forwarded: str | None) -> int:
    client = app.test_client()
    token = csrf_token(client)
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return client.post("/login", data={"email": email, "password": password,
                                       "csrf_token": token},
                       headers=headers, environ_base={"REMOTE_ADDR": PROXY}).status_code


def _audited_ips(db: Session, verb: str) -> list[str | None]:
    db.expire_all()
    return list(db.scalars(select(AuditEvent.ip).where(AuditEvent.verb == verb)
                           .order_by(AuditEvent.id)))


def test_behind_a_trusted_proxy_each_client_has_its_own_limits(
        sessions: sessionmaker[Session], make_app: Callable[..., Flask], db: Session) -> None:
    app = _app(sessions, make_app, trusted_proxies=1)
    for n in range(20):
        assert _login(app, f"wie{n}@example.org", "Welkom2024!", "203.0.113.5") == 401
    assert _login(app, DEMO_EMAIL["admin"], DEMO_PASSWORD, "203.0.113.5") == 429
    # another client behind the same proxy is not paused with the sprayer
    assert _login(app, DEMO_EMAIL["admin"], DEMO_PASSWORD, "192.0.2.44") == 302
    assert set(_audited_ips(db, "login_failed")) == {"203.0.113.5"}
    assert _audited_ips(db, "login") == ["192.0.2.44"]


def test_a_forged_hop_in_front_of_the_proxy_s_own_entry_is_ignored(
        sessions: sessionmaker[Session], make_app: Callable[..., Flask], db: Session) -> None:
    app = _app(sessions, make_app, trusted_proxies=1)
    for n in range(6):  # a new made-up address each time, the proxy appends the real one
        assert _login(app, DEMO_EMAIL["centralist"], "guess",
                      f"192.0.2.{n}, 203.0.113.5") in (401, 429)
    assert _login(app, DEMO_EMAIL["centralist"], DEMO_PASSWORD,
                  "192.0.2.99, 203.0.113.5") == 429
    assert set(_audited_ips(db, "login_failed")) == {"203.0.113.5"}


def test_without_a_trusted_proxy_x_forwarded_for_is_the_client_s_own_text(
        app: Flask, db: Session) -> None:
    assert _login(app, DEMO_EMAIL["centralist"], "guess", "192.0.2.1") == 401
    assert _audited_ips(db, "login_failed") == [PROXY]


def test_the_api_limits_each_client_behind_the_proxy(
        sessions: sessionmaker[Session], make_app: Callable[..., Flask]) -> None:
    app = _app(sessions, make_app, trusted_proxies=1)
    client = app.test_client()

    def status(forwarded: str) -> int:
        return client.get("/api/v1/actions", headers={
            "Authorization": "Bearer bn_guess", "X-Forwarded-For": forwarded},
            environ_base={"REMOTE_ADDR": PROXY}).status_code

    assert [status("203.0.113.5") for _ in range(21)] == [401] * 20 + [429]
    assert status("192.0.2.44") == 401


def test_cookies_are_secure_behind_an_https_public_url(
        settings: Settings, sessions: sessionmaker[Session],
        make_app: Callable[..., Flask]) -> None:
    https = Settings.from_env({"BURGERNET_HOME": str(settings.home),
                               "DATABASE_URL": settings.database_url,
                               "SECRET_KEY": "test-secret-key",
                               "PUBLIC_URL": "https://burgernet.example.nl"})
    app = _app(sessions, make_app, public_url=https.public_url,
               session_cookie_secure=https.session_cookie_secure)
    response = app.test_client().get("/login", base_url="https://burgernet.example.nl")
    [cookie] = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert "; Secure" in cookie and "HttpOnly" in cookie
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
