"""The centralist's console: list, create, preview, start, follow and end search actions and
AMBER Alerts of the user's own organisation (admins: every organisation)."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select
from werkzeug.exceptions import RequestEntityTooLarge

from core.db import transaction
from core.images import CleanImage, store_image
from core.models import Action, ActionStatus, Role, Tip
from outbound.actions import ActionDraft
from outbound.fanout import ActionError, preview_action
from outbound.progress import forecast, progress
from routing.places import PlaceQueryError, search_places
from web import action_views
from web.action_views import FormPage, Refused, Says, create_draft, now, session_actor
from web.auth import acting_user, action_or_404, roles_required, visible_actions
from web.boundaries import BaseLayer, build_base_layer
from web.console_forms import CONSOLE_KINDS, LABELS, ActionForm, EndForm
from web.console_live import area_of_form, duration, live_data, local_time, sms_sizes
from web.context import db, runtime, writer
from web.i18n import translate
from web.inputs import page_number
from web.media import PhotoInvalid, discard, media_dir, read_upload, send_photo
from web.nav import STAFF
from web.places import error_parts, places_json
from web.submissions import earlier_draft, new_submission, remember, valid

bp = Blueprint("console", __name__, url_prefix="/console")

CONSOLE_ROLES = (Role.ADMIN, Role.CENTRALIST)
PAGE_SIZE = 100
TOP_MUNICIPALITIES = 15
START = Says(done="De actie is gestart.",
             again="Deze actie was al gestart; er is niets opnieuw verstuurd.",
             conflict="Deze actie heeft geen geldig gebied en kan niet starten.",
             no_queue="Er is geen wachtrij (Redis) ingesteld; de actie kan nu niet starten.",
             queue_down="De actie is gestart, maar de wachtrij was niet bereikbaar. De worker "
                        "verstuurt de berichten alsnog binnen enkele minuten.")
END = Says(done="De actie is beëindigd; de uitslag gaat naar iedereen die de actie ontving.",
           conflict="Deze actie is al beëindigd.",
           not_started="Een concept kan niet worden beëindigd; het is nog niet gestart.",
           no_queue="Er is geen wachtrij (Redis) ingesteld; beëindigen kan nu niet.",
           queue_down="De actie is beëindigd, maar de wachtrij was niet bereikbaar. De worker "
                      "verstuurt de uitslag alsnog binnen enkele minuten.")


def _console_action(action_id: int) -> Action:
    """The action if this user may see it and it is one of the console's kinds, else 404."""
    return action_or_404(action_id, CONSOLE_KINDS)


@bp.context_processor
def _page_helpers() -> dict[str, Any]:
    return {"labels": LABELS, "duration": duration, "local_time": local_time,
            "photos_allowed": current_user.is_authenticated
            and current_user.role == Role.CENTRALIST}


@bp.app_template_global("map_settings")
def map_settings() -> dict[str, str]:
    """What the area picker needs from the configuration (the tiles are optional)."""
    settings = runtime().settings
    return {"tiles_url": settings.map_tiles_url,
            "tiles_attribution": settings.map_tiles_attribution}


@bp.get("/")
@roles_required(*CONSOLE_ROLES)
def index() -> ResponseReturnValue:
    """The actions, newest first, filtered by status when asked."""
    status = request.args.get("status", "")
    statement = visible_actions(select(Action)).where(Action.kind.in_(CONSOLE_KINDS))
    if status in {s.value for s in ActionStatus}:
        statement = statement.where(Action.status == ActionStatus(status))
    page = page_number()
    actions = db().scalars(statement.order_by(Action.created_at.desc(), Action.id.desc())
                           .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)).all()
    return render_template("console/index.html", actions=actions[:PAGE_SIZE], status=status,
                           page=page, more=len(actions) > PAGE_SIZE)


@bp.route("/actions/new", methods=["GET", "POST"])
@roles_required(*CONSOLE_ROLES)
def new() -> ResponseReturnValue:
    """The form for a new draft; it is stored only when every field is right, and once per
    form shown (`web.submissions`): sent again, it leads to the draft it made."""
    form = ActionForm.for_user(acting_user())
    if not form.is_submitted():
        form.submission.data = new_submission()
        return render_template("console/new.html", form=form, errors={})
    errors = form.check()
    photo: CleanImage | None = None
    try:
        photo = read_upload(request.files.get("photo"))
    except PhotoInvalid as exc:
        errors["photo"] = str(exc)
    action_id, errors, again = _store_draft(form, errors, photo)
    if action_id is None:
        if photo is not None:
            errors.setdefault("photo", "Kies de foto opnieuw; een browser stuurt hem niet "
                                       "vanzelf nog eens mee.")
        return render_template("console/new.html", form=form, errors=errors), 400
    flash("Dit formulier was al verstuurd; er is geen tweede concept gemaakt." if again else
          "Het concept is opgeslagen. Controleer wie het bereikt en start de actie.")
    return redirect(url_for("console.show", action_id=action_id))


def _store_draft(form: ActionForm, errors: dict[str, str], photo: CleanImage | None
                 ) -> tuple[int | None, dict[str, str], bool]:
    """Create the draft with its photo in one transaction; the photo file stays only if the
    transaction committed. Every wrong field is named at once. The draft this form made
    before, if it did (the third value says so)."""
    directory = media_dir(runtime().settings, "actions")
    submission = valid(form.submission.data)
    name = None
    try:
        with transaction(writer()) as session:
            earlier = (earlier_draft(session, current_user.id, submission, now())
                       if submission else None)
            if earlier is not None:
                return earlier, {}, True
            action = create_draft(session, session_actor(session),
                                  ActionDraft(**form.draft_values()), errors)
            if submission:
                remember(session, action.id, submission)
            if photo is not None:
                name = store_image(photo, directory)
                action.photo_path, action.photo_type = name, photo.content_type
            action_id = action.id
    except Refused as refused:
        return None, refused.recorded(), False
    except BaseException:
        discard(directory, name)
        raise
    return action_id, {}, False


@bp.errorhandler(RequestEntityTooLarge)
def too_large(_error: RequestEntityTooLarge) -> ResponseReturnValue:
    """A body over the app's limit cannot even be read; say what the limit is. The body is
    refused before the view (and its role check) runs, so only a user who may see the form
    gets it back."""
    if request.endpoint != "console.new" or not current_user.is_authenticated \
            or current_user.role not in CONSOLE_ROLES:
        return translate("Het verzoek is te groot."), 413
    form = ActionForm.for_user(acting_user(), formdata=None)
    return render_template("console/new.html", form=form,
                           errors={"photo": "De foto is te groot: hoogstens 5 MB."}), 413


@bp.get("/actions/<int:action_id>")
@roles_required(*CONSOLE_ROLES)
def show(action_id: int) -> ResponseReturnValue:
    """A draft's preview with the start button, or an active or ended action's live page."""
    action = _console_action(action_id)
    if action.status == ActionStatus.DRAFT:
        return render_template("console/draft.html", action=action,
                               area=area_of_form(action), **_preview(action))
    return _live_page(action, EndForm(), {})


def _live_page(action: Action, end_form: EndForm, errors: dict[str, str],
               status: int = 200) -> ResponseReturnValue:
    return render_template("console/live.html", action=action, area=area_of_form(action),
                           end_form=end_form, errors=errors), status


def _preview(action: Action) -> dict[str, Any]:
    """Recipients by channel and municipality, SMS sizes, and how long sending would take."""
    settings = runtime().settings
    try:
        result = preview_action(db(), action, now())
    except ActionError:
        return {"preview": None}
    seconds = forecast(settings, result.by_channel)
    municipalities = result.municipalities_ranked()
    rest = municipalities[TOP_MUNICIPALITIES:]
    return {"preview": result, "forecast": seconds,
            "forecast_total": max(seconds.values(), default=0.0),
            "municipalities": municipalities[:TOP_MUNICIPALITIES],
            "rest": (len(rest), sum(n for _name, n in rest)),
            "sms": sms_sizes(action, settings.free_number)}


@bp.post("/actions/<int:action_id>/start")
@roles_required(*CONSOLE_ROLES)
def start(action_id: int) -> ResponseReturnValue:
    """Start a draft (see `start_for_request`); a second start does nothing."""
    return action_views.start(_console_action(action_id), START)


@bp.post("/actions/<int:action_id>/end")
@roles_required(*CONSOLE_ROLES)
def end(action_id: int) -> ResponseReturnValue:
    """End an active action with an outcome; everyone it reached gets the result."""
    action, form = _console_action(action_id), EndForm()
    return action_views.end(action, END, form.outcome.data or "",
                            (form.text.data or "").strip() or None,
                            FormPage(lambda errors: _live_page(action, form, errors, 400)))


@bp.get("/actions/<int:action_id>/progress.json")
@roles_required(*CONSOLE_ROLES)
def progress_json(action_id: int) -> ResponseReturnValue:
    """Deliveries by channel and status, current rate, forecast, calls and tips, for polling."""
    action = _console_action(action_id)
    result = progress(db(), action.id, runtime().settings, now())
    tips_allowed = current_user.role == Role.CENTRALIST
    response = jsonify(live_data(db(), action, result, tips_allowed=tips_allowed))
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/actions/<int:action_id>/photo")
@roles_required(Role.CENTRALIST)
def action_photo(action_id: int) -> ResponseReturnValue:
    """The action's photo, for centralists of its organisation only."""
    action = action_or_404(action_id)
    return send_photo(media_dir(runtime().settings, "actions"), action.photo_path,
                      action.photo_type)


@bp.get("/tips/<int:tip_id>/photo")
@roles_required(Role.CENTRALIST)
def tip_photo(tip_id: int) -> ResponseReturnValue:
    """A tip's photo, for centralists of the organisation whose action it answers."""
    tip = db().scalar(visible_actions(select(Tip).join(Action, Action.id == Tip.action_id))
                      .where(Tip.id == tip_id))
    if tip is None:
        abort(404)
    return send_photo(media_dir(runtime().settings, "tips"), tip.media_path, tip.media_type)


@bp.get("/map/municipalities.geojson")
@roles_required(*STAFF)
def boundaries() -> ResponseReturnValue:
    """The offline base map: simplified municipality boundaries, built once per process."""
    layer: BaseLayer | None = current_app.extensions.get("console.base_layer")
    if layer is None:
        layer = current_app.extensions["console.base_layer"] = build_base_layer(db())
    gzipped = "gzip" in request.accept_encodings
    response = current_app.response_class(layer.gzipped if gzipped else layer.content,
                                          mimetype="application/geo+json")
    if gzipped:
        response.headers["Content-Encoding"] = "gzip"
    response.headers["Vary"] = "Accept-Encoding"
    response.headers["Cache-Control"] = "private, max-age=3600"
    response.set_etag(layer.etag + ("-gz" if gzipped else ""))
    return response.make_conditional(request)



@bp.get("/map/places.json")
@roles_required(*STAFF)
def places() -> ResponseReturnValue:
    """Suggestions for the map's place search (routing.places), as the API gives them."""
    query = request.args.get("q", "")
    try:
        found = search_places(db(), query)
    except PlaceQueryError as exc:
        status, message, values = error_parts(exc)
        text = translate(message, **values)
        response = jsonify({"error": {"id": exc.error_id, "message": text,
                                      "fields": {"q": text}}})
        response.status_code = status
    else:
        response = jsonify(places_json(query, found, translate))
    response.headers["Cache-Control"] = "private, no-store"
    return response
