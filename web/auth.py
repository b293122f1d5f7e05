"""Logging in and out of the console."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from functools import cache, wraps
from typing import Any, ParamSpec, TypeVar

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import Select, func, select
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import EmailField, PasswordField
from wtforms.validators import EqualTo, InputRequired, Length

from core import audit
from core.db import transaction
from core.models import Action, ActionKind, Role, User
from core.permissions import NotPermitted
from web import attempts, login_limits, staff_session
from web.context import db, runtime, writer
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


#: A new password has at least this many characters (and at most PASSWORD_MAX, which bounds
#: the cost of hashing what anyone may post).
PASSWORD_MIN = 12
PASSWORD_MAX = 200
#: Wrong current passwords on the change form per user per minute, before it pauses.
PASSWORD_FAILURES = 5


class PasswordForm(FlaskForm):
    current = PasswordField("Huidig wachtwoord", validators=[
        InputRequired("Vul dit veld in."), Length(max=PASSWORD_MAX)])
    new = PasswordField("Nieuw wachtwoord", validators=[
        InputRequired("Vul dit veld in."),
        Length(min=PASSWORD_MIN, max=PASSWORD_MAX,
               message="Kies een wachtwoord van 12 tot 200 tekens.")])
    repeat = PasswordField("Nieuw wachtwoord nog een keer", validators=[
        InputRequired("Vul dit veld in."),
        EqualTo("new", message="De twee nieuwe wachtwoorden verschillen.")])


P = ParamSpec("P")
R = TypeVar("R")


def roles_required(*roles: Role) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Only logged-in users with one of ROLES; others get 403 (anonymous: the login page)."""
    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        @login_required
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            if current_user.role not in roles:
                audit.record(db(write=True), "forbidden", "page", request.path,
                             user=current_user, ip=request.remote_addr)
                abort(403)
            return view(*args, **kwargs)
        return guarded
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
    return action


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
    return current_user._get_current_object()


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """The login page; a wrong e-mail and a wrong password get the same answer, and after
    too many failures (web.login_limits) a pause is asked whatever is typed."""
    if request.method == "POST":
        db(write=True)
    if current_user.is_authenticated:
        return redirect(url_for("auth.home"))
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        email = form.email.data.strip().lower()
        refused = login_limits.refusal(email)
        if refused is not None:
            audit.record(db(), "login_throttled", "user", actor=email[:160],
                         ip=request.remote_addr, limit=refused)
            message = translate("Te veel pogingen; probeer het later opnieuw." if
                                refused == "account" else
                                "Te veel pogingen; probeer het over een minuut opnieuw.")
            wait = login_limits.HOUR if refused == "account" else login_limits.MINUTE
            return render_template("login.html", form=form, error=message), 429, \
                {"Retry-After": str(wait)}
        user = db().scalar(select(User).where(func.lower(User.email) == email))
        if check_password_hash(user.password_hash if user else _dummy_hash(), form.password.data) \
                and user is not None and user.active:
            login_limits.succeeded(email)
            staff_session.begin(user)
            user.last_login_at = datetime.now(UTC)
            audit.record(db(), "login", "user", user.id, user=user, ip=request.remote_addr)
            return redirect(url_for("auth.home"))
        login_limits.failed(email)
        audit.record(db(), "login_failed", "user", actor=email[:160], ip=request.remote_addr)
        error = translate("Onjuist e-mailadres of wachtwoord.")
    status = 401 if error else 200
    return render_template("login.html", form=form, error=error), status


@bp.post("/logout")
@login_required
def logout() -> ResponseReturnValue:
    """Log out everywhere: the session key goes, so no copy of any session cookie of this
    user opens the console again."""
    with transaction(writer()) as session:
        user = session.get(User, current_user.id)
        assert user is not None
        user.session_key = None
        audit.record(session, "logout", "user", user.id, user=user, ip=request.remote_addr)
    staff_session.end()
    return redirect(url_for("auth.login"))


@bp.route("/wachtwoord", methods=["GET", "POST"])
@login_required
def password() -> ResponseReturnValue:
    """Change one's own password with the current one; every other session of the user ends,
    this one goes on with the new session key."""
    form = PasswordForm()
    if not form.validate_on_submit():
        return _password_page(form, 200 if request.method == "GET" else 400)
    user = acting_user()
    failures = f"password-fail:user:{user.id}"
    if attempts.too_many(runtime().redis, {failures: PASSWORD_FAILURES}):
        _audit_password(user, "password_change_throttled")
        return _password_page(form, 429, translate(
            "Te veel pogingen; probeer het over een minuut opnieuw."))
    if not check_password_hash(user.password_hash, form.current.data):
        attempts.count_failure(runtime().redis, [failures])
        _audit_password(user, "password_change_failed")
        form.current.errors = ["Dit is niet uw huidige wachtwoord."]
        return _password_page(form, 400)
    if form.new.data == form.current.data:
        form.new.errors = ["Kies een ander wachtwoord dan het huidige."]
        return _password_page(form, 400)
    with transaction(writer()) as session:
        changed = session.get(User, user.id)
        assert changed is not None
        changed.password_hash = generate_password_hash(form.new.data)
        changed.session_key = staff_session.new_key()
        audit.record(session, "password_change", "user", changed.id, user=changed,
                     ip=request.remote_addr)
    staff_session.begin(changed)
    flash("Uw wachtwoord is gewijzigd. Overal waar u nog was ingelogd, bent u uitgelogd.")
    return redirect(url_for("auth.home"))


def _password_page(form: PasswordForm, status: int, error: str | None = None
                   ) -> ResponseReturnValue:
    return render_template("password.html", form=form, error=error,
                           minimum=PASSWORD_MIN), status


def _audit_password(user: User, verb: str) -> None:
    with transaction(writer()) as session:
        audit.record(session, verb, "user", user.id, user=session.get(User, user.id),
                     ip=request.remote_addr)


@bp.get("/")
@login_required
def home() -> ResponseReturnValue:
    """Where a user lands after logging in."""
    return render_template("home.html", role=ROLE_LABELS[current_user.role.value])
