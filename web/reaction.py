"""The public reaction form of a neighbourhood inquiry: no login, only the personal link from
the e-mail, which opens the question once for that one recipient."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Blueprint, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response
from wtforms import StringField, TextAreaField

from core.models import Language
from outbound.inquiry import (
    CONTACT_MAX,
    REACTION_MAX,
    AlreadyReacted,
    InquiryClosed,
    ReactionInvalid,
    ReactionTarget,
    open_reaction,
    submit_reaction,
)
from outbound.links import LinkError, LinkExpired
from web.context import db, runtime
from web.i18n import current_language

bp = Blueprint("reaction", __name__, url_prefix="/reactie")

#: Why a link opens no form: the page's state (for the template and tests) and its status.
PROBLEMS = {"expired": 410, "invalid": 400, "closed": 410, "already": 200}
EXPIRED_FORM = ("Het formulier was verlopen. Uw tekst staat er nog: controleer hem en "
                "verstuur hem nog een keer.")


class ReactionForm(FlaskForm):
    text = TextAreaField()
    contact = StringField()


class _Unusable(Exception):
    """The link opens no form; STATE says why."""

    def __init__(self, state: str) -> None:
        super().__init__(state)
        self.state = state


@bp.after_request
def _private(response: Response) -> Response:
    """The link is a key: never cached, never sent on as a referrer, never indexed."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


@bp.errorhandler(_Unusable)
def _unusable(error: _Unusable) -> ResponseReturnValue:
    return render_template("reaction/message.html", state=error.state), PROBLEMS[error.state]


@bp.route("/<token>", methods=["GET", "POST"])
def react(token: str) -> ResponseReturnValue:
    """The question and the form; once answered, the link only says so."""
    form = ReactionForm()
    session = db(write=form.is_submitted())
    target = _open(session, token)
    if not form.is_submitted():
        return _form_page(target, form, {})
    try:
        submit_reaction(session, target, form.text.data, form.contact.data,
                        now=datetime.now(UTC))
    except ReactionInvalid as exc:
        return _form_page(target, form, exc.errors, 400)
    except AlreadyReacted:
        raise _Unusable("already") from None
    return redirect(url_for("reaction.thanks"))


@bp.errorhandler(CSRFError)
def _expired(_error: CSRFError) -> ResponseReturnValue:
    """A form left open too long (or sent without cookies): show it again with what was
    typed."""
    token = (request.view_args or {}).get("token")
    try:
        if request.endpoint != "reaction.react" or not token:
            raise _Unusable("invalid")
        target = _open(db(), token)
    except _Unusable as unusable:  # an error handler's own errors are not handled again
        return _unusable(unusable)
    return _form_page(target, ReactionForm(), {"form": EXPIRED_FORM}, 400)


@bp.get("/bedankt")
def thanks() -> ResponseReturnValue:
    return render_template("reaction/message.html", state="thanks")


def _open(session: Session, token: str) -> ReactionTarget:
    settings = runtime().settings
    try:
        return open_reaction(session, token, secret=settings.secret_key,
                             lifetime=timedelta(days=settings.inquiry_link_days))
    except LinkExpired:
        raise _Unusable("expired") from None
    except LinkError:
        raise _Unusable("invalid") from None
    except AlreadyReacted:
        raise _Unusable("already") from None
    except InquiryClosed:
        raise _Unusable("closed") from None


def _form_page(target: ReactionTarget, form: ReactionForm, errors: dict[str, str],
               status: int = 200) -> ResponseReturnValue:
    action = target.action
    english = current_language() == Language.EN.value
    title = action.title_en if english and action.title_en else action.title_nl
    question = (action.description_en if english and action.description_en
                else action.description_nl)
    return render_template("reaction/form.html", form=form, errors=errors, title=title,
                           question=question, text_max=REACTION_MAX,
                           contact_max=CONTACT_MAX), status
