"""Who is logged in to the console: Flask-Login on the signed session cookie, with three
additions that end a session for real.

- The user's `session_key` goes into the id Flask-Login keeps (`User.get_id`): logging out
  or changing the password replaces or clears it, and every copy of the cookie anywhere,
  including a remember-me cookie, stops working at once.
- A session ends after `STAFF_IDLE_MINUTES` without a request and `STAFF_SESSION_HOURS`
  after logging in, whatever happens in between.
- A session belongs to the client address (behind TRUSTED_PROXIES, the one they report) and
  browser that logged in. Flask-Login's own "strong" protection reads X-Forwarded-For
  straight from the request, which any client can write, so it is replaced by this check.

Only sessions this module began count: one restored from a remember-me cookie (none is ever
issued) has no start time and is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from flask import Flask, flash, request, session
from flask_login import LoginManager, login_user, logout_user

from core.models import User
from web.context import db
from web.i18n import LANGUAGES

SINCE = "staff_since"
SEEN = "staff_seen"
CLIENT = "staff_client"
#: The last-seen time is written at most this often, not into every answer's cookie.
SEEN_STEP = 60


def init_app(app: Flask, idle_minutes: int, session_hours: int) -> None:
    """Flask-Login with our user loader, and the expiry check before every request."""
    manager = LoginManager(app)
    manager.login_view = "auth.login"
    manager.login_message = "Log in om verder te gaan."
    manager.session_protection = None  # replaced by _client(), which trusts no header
    manager.user_loader(load_user)
    idle, lifetime = idle_minutes * 60, session_hours * 3600

    @app.before_request
    def _expire() -> None:
        """End a session that sat idle, lived too long or moved to another client."""
        if "_user_id" not in session:
            return
        stamp = int(time.time())
        since, seen = session.get(SINCE), session.get(SEEN)
        if not isinstance(since, int) or not isinstance(seen, int) \
                or session.get(CLIENT) != _client():
            end()
            return
        if stamp - seen > idle or stamp - since > lifetime:
            end()
            flash("Uw sessie is verlopen; log opnieuw in.")
        elif stamp - seen >= SEEN_STEP:
            session[SEEN] = stamp


def new_key() -> str:
    """A fresh session key: 256 random bits."""
    return secrets.token_urlsafe(32)


def begin(user: User) -> None:
    """Log USER in, in a fresh session (nothing of the old one but its language); the
    caller's database session writes the key if the user had none."""
    language = session.get("lang")
    session.clear()
    if language in LANGUAGES:
        session["lang"] = language
    if user.session_key is None:
        user.session_key = new_key()
    login_user(user)
    stamp = int(time.time())
    session[SINCE], session[SEEN], session[CLIENT] = stamp, stamp, _client()


def end() -> None:
    """End this session (Flask-Login's part and ours; a remember-me cookie is deleted)."""
    logout_user()
    for key in (SINCE, SEEN, CLIENT):
        session.pop(key, None)


def load_user(user_id: str) -> User | None:
    """The user of a session id "<id>:<key>", if the key is still theirs and they may work."""
    number, _, key = user_id.partition(":")
    if not number.isdigit() or not key or SINCE not in session:
        return None
    user = db().get(User, int(number))
    if user is None or not user.active or user.session_key is None \
            or not hmac.compare_digest(user.session_key, key):
        return None
    return user


def _client() -> str:
    """The client address and browser, hashed (the cookie is readable by its holder)."""
    seen = f"{request.remote_addr}|{request.headers.get('User-Agent', '')}"
    return hashlib.sha256(seen.encode("utf-8", "replace")).hexdigest()[:32]
