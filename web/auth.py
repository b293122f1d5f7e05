"""Logging in and out of the console."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from functools import cache

from flask import Blueprint, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import EmailField, PasswordField
from wtforms.validators import InputRequired, Length

from core import audit
from core.models import User
from web import db
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


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """The login page; a wrong e-mail and a wrong password get the same answer."""
    if current_user.is_authenticated:
        return redirect(url_for("auth.home"))
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        email = form.email.data.strip().lower()
        user = db().scalar(select(User).where(func.lower(User.email) == email))
        if check_password_hash(user.password_hash if user else _dummy_hash(), form.password.data) \
                and user is not None and user.active:
            login_user(user)
            user.last_login_at = datetime.now(UTC)
            audit.record(db(), "login", "user", user.id, user=user, ip=request.remote_addr)
            return redirect(url_for("auth.home"))
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
