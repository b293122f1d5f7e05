"""Logging in and out of the console."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from functools import cache, wraps
from typing import Any, TypeVar

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import Select, func, select
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import EmailField, PasswordField
from wtforms.validators import InputRequired, Length

from core import audit
from core.addresses import client_network
from core.db import transaction
from core.models import Action, ActionKind, Role, User
from core.permissions import NotPermitted
from web import attempts, db, runtime, writer
from web.i18n import translate

bp = Blueprint("auth", __name__)

ROLE_LABELS = {"admin": "beheerder", "centralist": "centralist",
               "municipality_officer": "gemeentelijk medewerker"}


@cache
def _dummy_hash() -> str:
    """Checked against when the e-mail is unknown, so both paths cost the same time."""
    return generate_password_hash(secrets.token_hex(16))


class LoginForm(FlaskForm):
    email = EmailField("E-mailadres", validators=[InputRequired("Vul dit veld in."),
                                                  Length(max=254)])
    password = PasswordField("Wachtwoord", validators=[InputRequired("Vul dit veld in."),
                                                       Length(max=200)])


F = TypeVar("F", bound=Callable[..., Any])

#: Failed logins allowed per minute, per e-mail address and per client address.
FAILURES_PER_EMAIL = 5
FAILURES_PER_IP = 20


def roles_required(*roles: Role) -> Callable[[F], F]:
    """Only logged-in users with one of ROLES; others get 403 (anonymous: the login page)."""
    def decorate(view: F) -> F:
        @wraps(view)
        @login_required
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if current_user.role not in roles:
                audit.record(db(write=True), "forbidden", "page", request.path,
                             user=current_user, ip=request.remote_addr)
                abort(403)
            return view(*args, **kwargs)
        return guarded  # type: ignore[return-value]
    return decorate


def visible_actions(statement: Select[Any]) -> Select[Any]:
    """STATEMENT over Action limited to what the current user may see: admins everything,
    everyone else the actions of their own organisation."""
    if current_user.role == Role.ADMIN:
        return statement
    return statement.where(Action.organisation_id == current_user.organisation_id)


def action_or_404(action_id: int, kinds: Collection[ActionKind] | None = None) -> Action:
    """The action, if the current user may see it (and it is one of KINDS); another
    organisation's action is a 404, so its existence does not leak."""
    action = db().scalar(visible_actions(select(Action).where(Action.id == action_id)))
    if action is None or (kinds is not None and action.kind not in kinds):
        abort(404)
    return action  # type: ignore[no-any-return]


def record_refusal(refusal: NotPermitted, action_id: object = None, *,
                   actor: str | None = None) -> None:
    """Keep an attempt the permission rules refused in the audit trail, in a transaction of
    its own (what was attempted was rolled back): by the logged-in user, or ACTOR (a key)."""
    user = None if actor or not current_user.is_authenticated else acting_user()
    with transaction(writer()) as session:
        audit.record(session, "forbidden", "action", action_id, user=user, actor=actor,
                     ip=request.remote_addr, error=refusal.error_id, reasons=refusal.details)


def acting_user() -> User:
    """The logged-in user as a model object (not Flask-Login's proxy), for the audit log."""
    return current_user._get_current_object()  # type: ignore[no-any-return]


def _failure_keys(email: str) -> tuple[str, str]:
    """The Redis keys of failed logins: the address only hashed, so no key names a person."""
    hashed = hashlib.sha256(email.strip().casefold().encode()).hexdigest()[:32]
    return f"login-fail:email:{hashed}", f"login-fail:ip:{client_network(request.remote_addr)}"


def _throttled(email: str) -> bool:
    """True when this address or this client failed too often in the last minute."""
    by_email, by_ip = _failure_keys(email)
    return attempts.too_many(runtime().redis, {by_email: FAILURES_PER_EMAIL,
                                               by_ip: FAILURES_PER_IP})


def _count_failure(email: str) -> None:
    attempts.count_failure(runtime().redis, _failure_keys(email))


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """The login page; a wrong e-mail and a wrong password get the same answer, and after
    too many failures a minute's pause is asked whatever is typed."""
    if current_user.is_authenticated:
        return redirect(url_for("auth.home"))
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        email = form.email.data.strip().lower()
        if _throttled(email):
            audit.record(db(write=True), "login_throttled", "user", actor=email[:160],
                         ip=request.remote_addr)
            message = translate("Te veel pogingen; probeer het over een minuut opnieuw.")
            return render_template("login.html", form=form, error=message), 429
        user = db().scalar(select(User).where(func.lower(User.email) == email))
        if check_password_hash(user.password_hash if user else _dummy_hash(), form.password.data) \
                and user is not None and user.active:
            login_user(user)
            user.last_login_at = datetime.now(UTC)
            audit.record(db(), "login", "user", user.id, user=user, ip=request.remote_addr)
            return redirect(url_for("auth.home"))
        _count_failure(email)
        audit.record(db(), "login_failed", "user", actor=email[:160], ip=request.remote_addr)
        error = translate("Onjuist e-mailadres of wachtwoord.")
    status = 401 if error else 200
    return render_template("login.html", form=form, error=error), status


@bp.post("/logout")
@login_required
def logout() -> ResponseReturnValue:
    audit.record(db(), "logout", "user", current_user.id, user=current_user,
                 ip=request.remote_addr)
    logout_user()
    return redirect(url_for("auth.login"))


@bp.get("/")
@login_required
def home() -> ResponseReturnValue:
    """Where a user lands after logging in."""
    return render_template("home.html", role=ROLE_LABELS[current_user.role.value])
