"""Failed logins pause only whoever failed: a guesser's own client, a sprayer's client, and
past a higher limit every client that failed on an account under attack; never the owner
logging in from elsewhere. The password is not checked while a limit holds."""

from __future__ import annotations

import pytest
import redis
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import AuditEvent
from core.seed import DEMO_PASSWORD
from tests.web.helpers import DEMO_EMAIL, csrf_token
from web import login_limits

VICTIM = DEMO_EMAIL["centralist"]
ATTACKER, OWNER = "203.0.113.66", "192.0.2.10"


def _login(app: Flask, email: str, password: str, address: str) -> int:
    """The status of one login attempt from ADDRESS, in a fresh browser."""
    client = app.test_client()
    token = csrf_token(client)
    response = client.post("/login", data={"email": email, "password": password,
                                           "csrf_token": token},
                           environ_base={"REMOTE_ADDR": address})
    return response.status_code


def test_an_attacker_elsewhere_cannot_lock_the_owner_out(app: Flask) -> None:
    for _ in range(10):
        _login(app, VICTIM, "guess", ATTACKER)
    assert _login(app, VICTIM, DEMO_PASSWORD, ATTACKER) == 429
    assert _login(app, VICTIM, DEMO_PASSWORD, OWNER) == 302


def test_guessing_one_account_pauses_that_client_even_with_the_right_password(
        app: Flask, db: Session) -> None:
    statuses = [_login(app, VICTIM, "guess", ATTACKER) for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    assert _login(app, VICTIM, DEMO_PASSWORD, ATTACKER) == 429
    event = db.scalar(select(AuditEvent).where(AuditEvent.verb == "login_throttled"))
    assert event.details == {"limit": "account_from_client"} and event.ip == ATTACKER


def test_spraying_many_accounts_from_one_client_pauses_that_client(app: Flask) -> None:
    for n in range(20):
        assert _login(app, f"wie{n}@example.org", "Welkom2024!", ATTACKER) == 401
    assert _login(app, DEMO_EMAIL["admin"], DEMO_PASSWORD, ATTACKER) == 429
    assert _login(app, DEMO_EMAIL["admin"], DEMO_PASSWORD, OWNER) == 302


def test_guessing_one_account_from_many_addresses_stops_each_address_after_its_guess(
        app: Flask, db: Session) -> None:
    bots = [f"198.51.100.{n}" for n in range(1, login_limits.ACCOUNT_FAILURES + 1)]
    for bot in bots:
        assert _login(app, VICTIM, "guess", bot) == 401
    # the account is under attack now: every bot that failed on it is refused unheard ...
    assert _login(app, VICTIM, DEMO_PASSWORD, bots[0]) == 429
    # ... a new bot gets one guess, then the same ...
    assert _login(app, VICTIM, "guess", "198.51.100.200") == 401
    assert _login(app, VICTIM, "guess", "198.51.100.200") == 429
    # ... and the owner, who has not failed, gets in
    assert _login(app, VICTIM, DEMO_PASSWORD, OWNER) == 302
    limits = db.scalars(select(AuditEvent).where(AuditEvent.verb == "login_throttled")).all()
    assert {event.details["limit"] for event in limits} == {"account"}


def test_a_success_forgets_the_client_s_earlier_typos(app: Flask) -> None:
    for _ in range(4):
        assert _login(app, VICTIM, "typo", OWNER) == 401
    assert _login(app, VICTIM, DEMO_PASSWORD, OWNER) == 302
    for _ in range(4):
        assert _login(app, VICTIM, "typo", OWNER) == 401
    assert _login(app, VICTIM, DEMO_PASSWORD, OWNER) == 302


@pytest.mark.parametrize(("prefix", "seconds"), [
    ("login-fail:pair:", 60), ("login-fail:ip:", 60),
    ("login-fail:pair-hour:", 3600), ("login-fail:account:", 3600)])
def test_failures_are_kept_a_minute_or_an_hour_and_name_no_address(
        app: Flask, redis_client: redis.Redis, prefix: str, seconds: int) -> None:
    _login(app, VICTIM, "guess", ATTACKER)
    [key] = [k.decode() for k in redis_client.scan_iter(f"{prefix}*")]
    assert 0 < redis_client.ttl(key) <= seconds
    assert VICTIM not in key and "centralist" not in key
