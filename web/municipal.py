"""Neighbourhood inquiries (Burgernetmail) and municipality messages: write, preview, send,
follow the reactions, close, and send the one update. Staff see their own organisation's;
admins every organisation's. Search actions are the console's, not these pages'."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.db import transaction
from core.models import (
    Action,
    ActionKind,
    ActionStatus,
    InquiryReaction,
    Language,
    Outcome,
)
from core.permissions import MUNICIPAL_MARGIN_M, Actor, NotPermitted, actor_for_user
from outbound.actions import ActionInvalid, discard_draft
from outbound.fanout import ActionError, preview_action
from outbound.inquiry import (
    MUNICIPAL_KINDS,
    counts,
    reactions,
    update_and_queue,
)
from outbound.templates import message_text
from web import action_views
from web.action_views import (
    FormPage,
    Refused,
    Says,
    acting_actor,
    back,
    change,
    create_draft,
    now,
    session_actor,
)
from web.auth import acting_user, action_or_404, roles_required, visible_actions
from web.console_forms import LABELS
from web.console_live import area_of_form, local_time
from web.context import db, runtime, writer
from web.i18n import translate
from web.inputs import page_number
from web.municipal_forms import FIELD, TEXT_LABEL, MunicipalForm, UpdateForm
from web.nav import STAFF
from web.submissions import earlier_draft, new_submission, remember, valid

bp = Blueprint("municipal", __name__, url_prefix="/gemeente")

PAGE_SIZE = 100
SEND = Says(done="Het versturen is begonnen.",
            again="Dit was al verstuurd; er is niets opnieuw verstuurd.",
            conflict="Dit concept heeft geen geldig gebied en kan niet worden verstuurd.",
            no_queue="Er is geen wachtrij (Redis) ingesteld; er kan nu niets worden verstuurd.",
            queue_down="Het versturen is begonnen, maar de wachtrij was niet bereikbaar. De "
                       "worker verstuurt de berichten alsnog binnen enkele minuten.")
_CLOSE = Says(done="Het buurtonderzoek is gesloten; er komen geen reacties meer bij.",
              conflict="Dit is al gesloten.",
              not_started="Een concept is nog niet verstuurd en hoeft niet te worden gesloten.",
              no_queue="Er is geen wachtrij (Redis) ingesteld; sluiten kan nu niet.",
              queue_down="Het buurtonderzoek is gesloten, maar de wachtrij was niet bereikbaar. "
                         "De worker rondt het alsnog af binnen enkele minuten.")
CLOSE = {ActionKind.NEIGHBOURHOOD_INQUIRY: _CLOSE,
         ActionKind.PREVENTIVE: replace(
             _CLOSE, done="Het bericht is gestopt; wat nog wachtte, wordt niet meer verstuurd.",
             queue_down="Het bericht is gestopt, maar de wachtrij was niet bereikbaar. De worker "
                        "rondt het alsnog af binnen enkele minuten.")}
ALREADY_UPDATED = "Het vervolgbericht is al verstuurd; er gaat er maar één naar de buurt."
UPDATE = Says(done="Het vervolgbericht gaat naar iedereen die de e-mail van het "
                   "buurtonderzoek kreeg.",
              conflict=ALREADY_UPDATED,
              queue_down="Het vervolgbericht is opgeslagen, maar de wachtrij was niet "
                         "bereikbaar. De worker verstuurt het alsnog binnen enkele minuten.")
DISCARD = Says(done="Het concept is verwijderd.",
               conflict="Alleen een concept kan worden verwijderd.")


def _municipal_action(action_id: int) -> Action:
    """The inquiry or message if this user may see it; anything else is a 404."""
    return action_or_404(action_id, MUNICIPAL_KINDS)


@bp.context_processor
def _page_helpers() -> dict[str, Any]:
    return {"labels": LABELS, "local_time": local_time, "text_label": TEXT_LABEL,
            "picker": "console.boundaries" in current_app.view_functions,
            "link_days": runtime().settings.inquiry_link_days}


@bp.get("/")
@roles_required(*STAFF)
def index() -> ResponseReturnValue:
    """The organisation's inquiries and messages, newest first."""
    page = page_number()
    actions = db().scalars(
        visible_actions(select(Action)).where(Action.kind.in_(MUNICIPAL_KINDS))
        .order_by(Action.created_at.desc(), Action.id.desc())
        .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)).all()
    shown = actions[:PAGE_SIZE]
    reacted = dict(db().execute(
        select(InquiryReaction.action_id, func.count(InquiryReaction.id))
        .where(InquiryReaction.action_id.in_([a.id for a in shown]))
        .group_by(InquiryReaction.action_id)).all())
    return render_template("municipal/index.html", actions=shown, reacted=reacted, page=page,
                           more=len(actions) > PAGE_SIZE)


@bp.route("/buurtonderzoek/nieuw", methods=["GET", "POST"])
@roles_required(*STAFF)
def new_inquiry() -> ResponseReturnValue:
    """Write a neighbourhood inquiry; it is stored as a draft to preview."""
    return _new(ActionKind.NEIGHBOURHOOD_INQUIRY)


@bp.route("/bericht/nieuw", methods=["GET", "POST"])
@roles_required(*STAFF)
def new_message() -> ResponseReturnValue:
    """Write a preventive message; it is stored as a draft to preview."""
    return _new(ActionKind.PREVENTIVE)


def _new(kind: ActionKind) -> ResponseReturnValue:
    form = MunicipalForm.for_user(acting_user())
    if not form.is_submitted():
        form.submission.data = new_submission()
        return _form_page(form, kind, {})
    return _save(form, kind, None)


@bp.route("/<int:action_id>/wijzigen", methods=["GET", "POST"])
@roles_required(*STAFF)
def edit(action_id: int) -> ResponseReturnValue:
    """Change a draft: the changed version replaces it, all or nothing."""
    action = _municipal_action(action_id)
    if action.status != ActionStatus.DRAFT:
        return back(action, "Alleen een concept kan nog worden gewijzigd.")
    if request.method == "GET":
        return _form_page(MunicipalForm.of_draft(acting_user(), action), action.kind, {}, action)
    return _save(MunicipalForm.for_user(acting_user()), action.kind, action)


def _form_page(form: MunicipalForm, kind: ActionKind, errors: dict[str, str],
               replaces: Action | None = None, status: int = 200) -> ResponseReturnValue:
    return render_template("municipal/form.html", form=form, kind=kind.value, errors=errors,
                           area=form.area_values(), replaces=replaces,
                           municipality=_bound_to(), margin=f"{MUNICIPAL_MARGIN_M:.0f}"), status


def _bound_to() -> str | None:
    """The municipality whose boundary the user's areas must keep to, if any."""
    user = acting_user()
    if not actor_for_user(user).bounded or user.organisation.municipality is None:
        return None
    return user.organisation.municipality.name


def _save(form: MunicipalForm, kind: ActionKind,
          replaces: Action | None) -> ResponseReturnValue:
    errors = form.check(kind)
    action_id, errors, again = _store(form, kind, errors, replaces.id if replaces else None)
    if action_id is None:
        return _form_page(form, kind, errors, replaces, 400)
    flash("Dit formulier was al verstuurd; er is geen tweede concept gemaakt." if again else
          "Het concept is opgeslagen. Controleer wie het bereikt en verstuur het.")
    return redirect(url_for("municipal.show", action_id=action_id))


EXPIRED = "Het sessieformulier is verlopen. Wat u typte staat er nog: verstuur het nog een keer."
FORM_KINDS = {"municipal.new_inquiry": ActionKind.NEIGHBOURHOOD_INQUIRY,
              "municipal.new_message": ActionKind.PREVENTIVE}


@bp.errorhandler(CSRFError)
def _expired(_error: CSRFError) -> ResponseReturnValue:
    """A form left open too long: show it again with what was typed (CSRF is checked before
    the view, so the role is checked here)."""
    if not current_user.is_authenticated or current_user.role not in STAFF:
        return translate("Het sessieformulier is verlopen; probeer het opnieuw."), 400
    kind = FORM_KINDS.get(request.endpoint or "")
    if kind is not None:
        return _form_page(MunicipalForm.for_user(acting_user()), kind, {"form": EXPIRED}, None, 400)
    action_id = (request.view_args or {}).get("action_id")
    action = db().scalar(visible_actions(select(Action)).where(
        Action.id == action_id, Action.kind.in_(MUNICIPAL_KINDS))) if action_id else None
    if action is None:
        return translate("Het sessieformulier is verlopen; probeer het opnieuw."), 400
    if request.endpoint == "municipal.edit" and action.status == ActionStatus.DRAFT:
        return _form_page(MunicipalForm.for_user(acting_user()), action.kind, {"form": EXPIRED},
                          action, 400)
    return back(action, "Het sessieformulier is verlopen; probeer het opnieuw.")


def _store(form: MunicipalForm, kind: ActionKind, errors: dict[str, str],
           replaces: int | None) -> tuple[int | None, dict[str, str], bool]:
    """Create the draft (and drop the one it replaces) in one transaction; every wrong field
    is named at once. A new draft's form sent again leads to the draft it made (the third
    value says so); a changed draft's cannot replace it twice."""
    submission = valid(form.submission.data) if replaces is None else None
    try:
        with transaction(writer()) as session:
            earlier = (earlier_draft(session, current_user.id, submission, now())
                       if submission else None)
            if earlier is not None:
                return earlier, {}, True
            actor = session_actor(session)
            action = create_draft(session, actor, form.draft(kind), errors, FIELD)
            if submission:
                remember(session, action.id, submission)
            if replaces is not None:
                _replace(session, replaces, actor, action.id)
            return action.id, {}, False
    except Refused as refused:
        return None, refused.recorded(replaces), False


def _replace(session: Session, old_id: int, actor: Actor, new_id: int) -> None:
    """Drop the draft OLD_ID that NEW_ID replaces, if the actor may (the service decides)."""
    try:
        discard_draft(session, old_id, actor, replaced_by=new_id)
    except ActionError:
        raise Refused({"form": "Dit concept is intussen verstuurd of verwijderd."}) from None
    except NotPermitted as exc:
        raise Refused(exc.errors, exc) from None


@bp.post("/<int:action_id>/verwijderen")
@roles_required(*STAFF)
def discard(action_id: int) -> ResponseReturnValue:
    """Throw a draft away (a started inquiry or message stays, it can be closed)."""
    action = _municipal_action(action_id)
    return change(action, DISCARD, lambda: _discard(action.id), then=url_for("municipal.index"))


def _discard(action_id: int) -> None:
    with transaction(writer()) as session:
        discard_draft(session, action_id, session_actor(session))


@bp.get("/<int:action_id>")
@roles_required(*STAFF)
def show(action_id: int) -> ResponseReturnValue:
    """A draft's preview with the send button; after sending the counts, reactions, closing
    and the update."""
    action = _municipal_action(action_id)
    return _show_page(action, UpdateForm(formdata=None), {})


def _show_page(action: Action, update_form: UpdateForm, errors: dict[str, str],
               status: int = 200) -> ResponseReturnValue:
    values: dict[str, Any] = {"action": action, "area": area_of_form(action),
                              "update_form": update_form, "errors": errors,
                              "samples": _samples(action)}
    if action.status == ActionStatus.DRAFT:
        try:
            values["preview"] = preview_action(db(), action, now())
        except ActionError:
            values["preview"] = None
    else:
        values["counts"] = counts(db(), action.id, now())
        values["reactions"] = (reactions(db(), action.id)
                               if action.kind == ActionKind.NEIGHBOURHOOD_INQUIRY else [])
    return render_template("municipal/show.html", **values), status


def _samples(action: Action) -> list[tuple[str, str]]:
    """The message as recipients read it, per language (the link is made per recipient)."""
    free_number = runtime().settings.free_number
    return [(language.value, message_text(action, "alert", language, free_number))
            for language in Language if language == Language.NL or action.title_en]


@bp.post("/<int:action_id>/versturen")
@roles_required(*STAFF)
def start(action_id: int) -> ResponseReturnValue:
    """Send a draft (see `start_for_request`); a second send does nothing."""
    return action_views.start(_municipal_action(action_id), SEND)


@bp.post("/<int:action_id>/sluiten")
@roles_required(*STAFF)
def end(action_id: int) -> ResponseReturnValue:
    """Close an inquiry (its form takes no more reactions) or stop a message; what is still
    waiting in the queue is not sent."""
    action = _municipal_action(action_id)
    return action_views.end(action, CLOSE[action.kind], Outcome.CANCELLED, None)


@bp.post("/<int:action_id>/vervolg")
@roles_required(*STAFF)
def send_update(action_id: int) -> ResponseReturnValue:
    """Send the inquiry's one update to everyone its e-mail reached."""
    action = _municipal_action(action_id)
    if action.kind != ActionKind.NEIGHBOURHOOD_INQUIRY:
        abort(404)
    if refusal := _update_refusal(action):
        return back(action, refusal)
    form = UpdateForm()
    return change(action, UPDATE, lambda: _update(action, form),
                  FormPage(lambda errors: _show_page(action, form, errors, 400),
                           takes=(ActionInvalid,)))


def _update(action: Action, form: UpdateForm) -> None:
    connection = runtime().redis
    assert connection is not None
    update_and_queue(writer(), connection, action.id, form.update_nl.data, form.update_en.data,
                     now=now(), who=acting_actor())


def _update_refusal(action: Action) -> str | None:
    """Why no update can go now, if it cannot."""
    if action.update_nl is not None:
        return ALREADY_UPDATED
    if action.status == ActionStatus.DRAFT:
        return "Verstuur eerst het buurtonderzoek zelf."
    if runtime().redis is None:
        return "Er is geen wachtrij (Redis) ingesteld; versturen kan nu niet."
    return None
