"""API keys for the dispatch systems: admins list, create and revoke them.

A new key is shown once, on the page that answers its creation, and never again: only its
hash is kept. Creating and revoking are audited.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import SelectField, SelectMultipleField, StringField
from wtforms.validators import InputRequired, Length

from core.models import Organisation, Role
from core.permissions import SCOPES, parse_scopes
from core.targeting import LOCAL_TIME
from core.tokens import (
    NAME_MAX,
    TokenInvalid,
    TokenNotFound,
    create_token,
    list_tokens,
    revoke_token,
)
from web.auth import roles_required
from web.context import db
from web.inputs import MAX_ID

bp = Blueprint("tokens", __name__, url_prefix="/beheer/api-sleutels")


def _id_or_none(value: object) -> int | None:
    """The organisation id from the form; anything else (no number, or none an id can be)
    becomes None, refused in Dutch below."""
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
    return number if 0 < number <= MAX_ID else None


#: The Dutch name of each scope (English in admin.toml).
SCOPE_LABELS = {"suspect": "Verdachte", "vehicle": "Voertuig",
                "missing_person": "Vermiste persoon", "amber": "AMBER Alert (regionaal)",
                "neighbourhood_inquiry": "Buurtonderzoek", "preventive": "Preventief bericht",
                "amber_national": "AMBER Alert (landelijk)"}


class TokenForm(FlaskForm):
    organisation = SelectField("Organisatie", coerce=_id_or_none, validate_choice=False)
    name = StringField("Naam", validators=[
        InputRequired("Vul een naam in."),
        Length(max=NAME_MAX, message=f"Te lang: hoogstens {NAME_MAX} tekens.")])
    #: Judged by core.tokens.check_scopes against the organisation's kind.
    scopes = SelectMultipleField("Bevoegdheden", validate_choice=False)


class RevokeForm(FlaskForm):
    """Only the CSRF token: revoking takes no input."""


def local_time(moment: datetime | None) -> str:
    """MOMENT in Dutch time, or a dash."""
    return moment.astimezone(LOCAL_TIME).strftime("%d-%m-%Y %H:%M") if moment else "–"


def _form() -> TokenForm:
    form = TokenForm()
    organisations = db().scalars(select(Organisation).order_by(Organisation.name)).all()
    form.organisation.choices = [(o.id, o.name) for o in organisations]
    form.scopes.choices = [(scope, SCOPE_LABELS[scope]) for scope in SCOPES]
    return form


def _page(form: TokenForm, status: int = 200, new_token: str | None = None,
          new_name: str | None = None, new_scopes: str = "") -> ResponseReturnValue:
    response = render_template("tokens/index.html", form=form, tokens=list_tokens(db()),
                               local_time=local_time, scope_labels=SCOPE_LABELS,
                               parse_scopes=parse_scopes, scope_order=SCOPES,
                               new_token=new_token, new_name=new_name,
                               new_scopes=parse_scopes(new_scopes))
    # The page may carry a secret shown once: no cache may keep it.
    return response, status, {"Cache-Control": "no-store"}


@bp.get("/")
@roles_required(Role.ADMIN)
def index() -> ResponseReturnValue:
    """Every API key with its organisation and use, and the form for a new one."""
    return _page(_form())


@bp.post("/")
@roles_required(Role.ADMIN)
def create() -> ResponseReturnValue:
    """Make a key and show it this once; a wrong form keeps what was typed."""
    session = db(write=True)
    form = _form()
    valid = form.validate_on_submit()
    organisation = session.get(Organisation, form.organisation.data) \
        if form.organisation.data is not None else None
    if organisation is None:
        form.organisation.errors = ["Kies een organisatie."]
    if not valid or organisation is None:
        return _page(form, 400)
    try:
        token, plain = create_token(session, organisation, form.name.data,
                                    now=datetime.now(UTC), scopes=form.scopes.data,
                                    user=current_user, ip=request.remote_addr)
    except TokenInvalid as exc:
        form.name.errors = [*form.name.errors, *(message for field, message
                                                 in exc.errors.items() if field == "name")]
        form.scopes.errors = [message for field, message in exc.errors.items()
                              if field == "scopes"]
        return _page(form, 400)
    name = f"{token.name} ({organisation.name})"
    return _page(_blank_form(), 201, new_token=plain, new_name=name, new_scopes=token.scopes)


def _blank_form() -> TokenForm:
    form = _form()
    form.name.data = ""
    form.scopes.data = []
    return form


@bp.post("/<int:token_id>/intrekken")
@roles_required(Role.ADMIN)
def revoke(token_id: int) -> ResponseReturnValue:
    """Revoke a key: the dispatch system using it gets 401 from the next request on."""
    session = db(write=True)
    if not RevokeForm().validate_on_submit():
        abort(400)
    try:
        done = revoke_token(session, token_id, now=datetime.now(UTC), user=current_user,
                            ip=request.remote_addr)
    except TokenNotFound:
        abort(404)
    flash("API-sleutel ingetrokken." if done else "Deze API-sleutel was al ingetrokken.")
    return redirect(url_for("tokens.index"))

