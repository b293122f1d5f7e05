"""The participant's own page: channels, quiet hours, language, places, devices for app
notifications, unsubscribing and deleting everything. Every view acts on the logged-in
participant only; another participant's place or device is a 404."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select

from core.egress import Egress
from core.errors import BurgernetError
from core.models import (
    Channel,
    LocationKind,
    Participant,
    ParticipantLocation,
    ParticipantStatus,
    Postcode,
    PushSubscription,
)
from core.participants import (
    MAX_LOCATIONS,
    HomeRequired,
    RegistrationError,
    add_place,
    change_preferences,
    forget,
    remove_location,
    start,
    stop,
)
from core.push import (
    MAX_PUSH_SUBSCRIPTIONS,
    add_push_subscription,
    remove_push_subscription,
)
from core.targeting import QUIET_HOURS_RULE
from outbound.providers.console import forget_sent
from outbound.providers.webpush import application_server_key
from web.context import db, runtime
from web.i18n import current_language, translate
from web.inputs import unstorable
from web.portal_forms import CHANNEL_LABELS, DeleteForm, PlaceForm, PreferencesForm
from web.portal_session import bp, national, now, participant_required, reset_session

LOCAL = ZoneInfo("Europe/Amsterdam")
KIND_LABELS = {LocationKind.HOME: "Thuis", LocationKind.WORK: "Werk",
               LocationKind.CURRENT: "Waar ik nu ben"}


@bp.get("/mijn")
@participant_required()
def mine(participant: Participant) -> ResponseReturnValue:
    """The participant's page with everything they chose."""
    return _page(participant)


def _page(participant: Participant, prefs: PreferencesForm | None = None,
          place: PlaceForm | None = None, status: int = 200) -> ResponseReturnValue:
    if place is None:
        place = PlaceForm(formdata=None, prefix="place")
    places = sorted(db().execute(
        select(ParticipantLocation, Postcode.place)
        .outerjoin(Postcode, Postcode.pc4 == ParticipantLocation.pc4)
        .where(ParticipantLocation.participant_id == participant.id)).all(),
        key=lambda row: (list(LocationKind).index(row[0].kind), row[0].id))
    devices = db().scalars(select(PushSubscription)
                           .where(PushSubscription.participant_id == participant.id)
                           .order_by(PushSubscription.id)).all()
    return render_template(
        "portal/mine.html", participant=participant, number=national(participant.phone),
        prefs=prefs or PreferencesForm.of(participant), place=place, places=places,
        devices=devices, channels=list(Channel), channel_labels=CHANNEL_LABELS,
        kind_labels=KIND_LABELS, states=ParticipantStatus,
        quiet_rule=QUIET_HOURS_RULE[current_language()], vapid_key=_vapid_key(),
        local=LOCAL, now=now()), status


@bp.post("/mijn/voorkeuren")
@participant_required(write=True)
def preferences(participant: Participant) -> ResponseReturnValue:
    """Channels, e-mail address, language and quiet hours, all checked before any is saved."""
    form = PreferencesForm(prefix="prefs")
    if not form.validate():
        return _page(participant, prefs=form, status=400)
    try:
        change_preferences(db(), participant, channels=form.channels.data,
                           quiet_hours=form.quiet_hours(), language=form.language.data,
                           email=(form.email.data or "").strip())
    except RegistrationError:
        form.channels.errors.append(translate("Deze keuzes kunnen wij niet opslaan."))
        return _page(participant, prefs=form, status=400)
    flash("Uw voorkeuren zijn opgeslagen.")
    return redirect(url_for("portal.mine"))


@bp.post("/mijn/plaatsen")
@participant_required(write=True)
def add_location(participant: Participant) -> ResponseReturnValue:
    """Add a work or current place (or move home) by postcode."""
    form = PlaceForm(prefix="place")
    if not form.validate():
        return _page(participant, place=form, status=400)
    kind = LocationKind(form.kind.data)
    replaces = kind != LocationKind.WORK and any(p.kind == kind for p in participant.locations)
    if not replaces and len(participant.locations) >= MAX_LOCATIONS:
        form.postcode.errors.append(translate(
            "U kunt hoogstens {n} plaatsen opgeven; verwijder er eerst een.", n=MAX_LOCATIONS))
        return _page(participant, place=form, status=400)
    hours = timedelta(hours=int(form.hours.data))
    try:
        add_place(db(), participant, kind, form.area.pc4, now=now(),
                  valid_for=hours if kind == LocationKind.CURRENT else None)
    except RegistrationError:
        db().rollback()
        form.postcode.errors.append(translate("Deze plaats kunnen wij niet opslaan."))
        return _page(participant, place=form, status=400)
    flash("De plaats is opgeslagen.")
    return redirect(url_for("portal.mine"))


@bp.post("/mijn/plaatsen/<int:location_id>/verwijderen")
@participant_required(write=True)
def remove_place(participant: Participant, location_id: int) -> ResponseReturnValue:
    try:
        removed = remove_location(db(), participant, location_id)
    except HomeRequired:
        flash("Uw woonadres kunt u wijzigen, maar niet verwijderen.", "error")
        return redirect(url_for("portal.mine"))
    if not removed:
        abort(404)
    flash("De plaats is verwijderd.")
    return redirect(url_for("portal.mine"))


@bp.post("/mijn/apparaten")
@participant_required(write=True, api=True)
def add_device(participant: Participant) -> ResponseReturnValue:
    """A browser's push subscription (its toJSON()), posted by the page's script."""
    body = request.get_json(silent=True)
    if unstorable(body):
        body = None  # refused below as any subscription that is not one
    subscription = body.get("subscription") if isinstance(body, dict) else None
    label = body.get("label") if isinstance(body, dict) else None
    settings = runtime().settings
    egress = Egress(settings.push_service_hosts, settings.test_only_allow_loopback)
    try:
        add_push_subscription(db(), participant, subscription, now(),  # type: ignore[arg-type]
                              label=label if isinstance(label, str) else None, egress=egress)
    except RegistrationError:
        db().rollback()
        active = db().scalar(select(func.count()).select_from(PushSubscription).where(
            PushSubscription.participant_id == participant.id,
            PushSubscription.disabled_at.is_(None)))
        message = (translate("U ontvangt al meldingen op {n} apparaten; verwijder er eerst een.",
                             n=MAX_PUSH_SUBSCRIPTIONS)
                   if (active or 0) >= MAX_PUSH_SUBSCRIPTIONS else
                   translate("Dit apparaat kon niet worden aangemeld voor app-meldingen."))
        return jsonify(ok=False, error=message), 400
    if not participant.has_channel(Channel.PUSH):
        chosen = [c.value for c in Channel if participant.has_channel(c)] + [Channel.PUSH.value]
        change_preferences(db(), participant, channels=chosen,
                           quiet_hours=participant.quiet_hours,
                           language=participant.language.value, email=participant.email or "")
    return jsonify(ok=True, message=translate("Dit apparaat ontvangt nu app-meldingen."))


@bp.post("/mijn/apparaten/<int:device_id>/verwijderen")
@participant_required(write=True)
def remove_device(participant: Participant, device_id: int) -> ResponseReturnValue:
    device = db().scalar(select(PushSubscription).where(
        PushSubscription.id == device_id, PushSubscription.participant_id == participant.id))
    if device is None:
        abort(404)
    remove_push_subscription(db(), participant, device.endpoint)
    flash("Het apparaat ontvangt geen app-meldingen meer.")
    return redirect(url_for("portal.mine"))


@bp.post("/mijn/afmelden")
@participant_required(write=True)
def unsubscribe(participant: Participant) -> ResponseReturnValue:
    """STOP from the web: no more messages; the data stays until it is deleted."""
    if participant.status != ParticipantStatus.STOPPED:
        stop(db(), participant, now())
    flash("U bent afgemeld en ontvangt geen berichten meer. Uw gegevens bewaren wij tot u "
          "ze verwijdert.")
    return redirect(url_for("portal.mine"))


@bp.post("/mijn/hervatten")
@participant_required(write=True)
def resubscribe(participant: Participant) -> ResponseReturnValue:
    if participant.status == ParticipantStatus.STOPPED:
        start(db(), participant, now())
    flash("U bent weer aangemeld.")
    return redirect(url_for("portal.mine"))


@bp.route("/mijn/verwijderen", methods=["GET", "POST"])
@participant_required(write=True)
def delete(participant: Participant) -> ResponseReturnValue:
    """Delete my data, after a confirmation."""
    form = DeleteForm()
    if form.validate_on_submit():
        erased = forget(db(), participant)
        db().commit()  # the demo's record of sent messages goes only once the data has
        forget_sent(runtime().settings.var_dir, [erased])
        reset_session()
        flash("Uw gegevens zijn verwijderd. Bedankt dat u meedeed met Burgernet.")
        return redirect(url_for("portal.index"))
    status = 400 if request.method == "POST" else 200
    return render_template("portal/delete.html", form=form), status


def _vapid_key() -> str | None:
    """The applicationServerKey for PushManager.subscribe, if this server has a VAPID key."""
    path = runtime().settings.vapid_private_key
    if path is None:
        return None
    try:
        return application_server_key(path)
    except BurgernetError:
        return None
