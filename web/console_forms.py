"""The console's forms and the Dutch names of what they choose from (English in console.toml)."""

from __future__ import annotations

import math
from typing import Any

from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import (
    BooleanField,
    FileField,
    FloatField,
    HiddenField,
    StringField,
    TextAreaField,
)

from core.models import ActionKind, Meldkamer, Outcome, Urgency, User
from core.permissions import NATIONAL_AMBER, Actor, actor_for_user
from web.context import db

#: What this console creates; inquiries and preventive messages have their own pages.
CONSOLE_KINDS = (ActionKind.SUSPECT, ActionKind.VEHICLE, ActionKind.MISSING_PERSON,
                 ActionKind.AMBER)
#: A drawn polygon arrives as GeoJSON text; a few thousand points is plenty.
POLYGON_MAX_CHARS = 100_000

LABELS: dict[str, dict[str, str]] = {
    "kind": {"suspect": "Verdachte", "vehicle": "Voertuig", "missing_person": "Vermiste persoon",
             "amber": "AMBER Alert", "neighbourhood_inquiry": "Buurtonderzoek",
             "preventive": "Preventief bericht"},
    "urgency": {"urgent": "Urgent", "normal": "Niet urgent"},
    "status": {"draft": "Concept", "active": "Actief", "ended": "Beëindigd"},
    "outcome": {"found": "Gevonden", "arrested": "Aangehouden", "not_found": "Niet gevonden",
                "cancelled": "Geannuleerd"},
    "channel": {"voice": "Spraak", "sms": "Sms", "email": "E-mail", "push": "Push"},
    "delivery": {"queued": "In de wachtrij", "sending": "Wordt verstuurd",
                 "unknown": "Wordt nagevraagd", "sent": "Verstuurd",
                 "delivered": "Afgeleverd", "answered": "Opgenomen",
                 "voicemail": "Op voicemail", "failed": "Mislukt", "skipped": "Overgeslagen"},
    "call": {"listening": "Luistert", "listened": "Beluisterd", "routing": "Wordt doorverbonden",
             "connected": "Doorverbonden", "caller_hung_up": "Beller hing op",
             "unanswered": "Niet beantwoord", "abandoned": "Afgebroken", "ended": "Beëindigd",
             "error": "Storing", "voicemail": "Op voicemail ingesproken", "fax": "Fax"},
}


class Number(FloatField):
    """A number typed either way (52,09 or 52.09); anything else says so in Dutch."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        text = str(valuelist[0] if valuelist else "").strip().replace(",", ".")
        self.data = None
        if not text:
            return
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise ValueError("Geef een getal.")
        self.data = value


class AreaFields:
    """The area picker's inputs (`lat`, `lon`, `radius_m`, `polygon`), shared by the forms
    that pick an area; subclasses declare the fields with their own default radius."""

    lat: Number
    lon: Number
    radius_m: Number
    polygon: HiddenField

    def area_values(self) -> dict[str, str]:
        """What the area picker shows again: exactly what was typed or clicked."""
        def typed(field: Any) -> str:
            if field.raw_data:
                return str(field.raw_data[0])
            return "" if field.data is None else f"{field.data:g}"

        return {"lat": typed(self.lat), "lon": typed(self.lon),
                "radius_m": typed(self.radius_m), "polygon": self.polygon.data or ""}


class ActionForm(AreaFields, FlaskForm):
    """A new search action or AMBER Alert; create_action decides what is valid and what the
    user may make (it offers only that, but judges what is sent)."""

    kind_choices: list[tuple[str, str]] = []
    national_allowed = False
    urgency_choices = [(u.value, LABELS["urgency"][u.value]) for u in Urgency]
    #: Options are rendered by the template and judged by check() and create_action.
    kind = StringField(default=ActionKind.SUSPECT.value)
    urgency = StringField(default=Urgency.URGENT.value)
    title_nl = StringField()
    title_en = StringField()
    description_nl = TextAreaField()
    description_en = TextAreaField()
    instruction_nl = TextAreaField()
    instruction_en = TextAreaField()
    lat = Number()
    lon = Number()
    radius_m = Number(default=2000)
    polygon = HiddenField()
    national = BooleanField()
    meldkamer = StringField()
    meldkamer_choices: list[tuple[str, str]] = []
    photo = FileField()
    #: The id of this copy of the form (`web.submissions`): sent twice, it makes one draft.
    submission = HiddenField()

    @classmethod
    def for_user(cls, user: User, **kwargs: Any) -> ActionForm:
        """The form with the kinds and meldkamers USER may choose; their own preselected."""
        actor = actor_for_user(user)
        choices = meldkamer_choices(actor)
        form = cls(meldkamer=actor.meldkamer_code or (choices[0][0] if choices else None),
                   **kwargs)
        form.meldkamer_choices = choices
        form.kind_choices = [(k.value, LABELS["kind"][k.value]) for k in CONSOLE_KINDS
                             if k.value in actor.scopes]
        form.national_allowed = NATIONAL_AMBER in actor.scopes
        return form

    def check(self) -> dict[str, str]:
        """Errors the service does not judge: numbers, the kinds this page makes."""
        self.validate()
        errors = {name: str(messages[0]) for name, messages in self.errors.items()
                  if name not in {"csrf_token", "photo"} and messages}
        if self.kind.data not in {kind.value for kind in CONSOLE_KINDS}:
            errors["kind"] = "Kies een soort actie."
        if len(self.polygon.data or "") > POLYGON_MAX_CHARS:
            errors["area"] = "Het getekende gebied heeft te veel punten."
            self.polygon.data = ""
        return errors

    def draft_values(self) -> dict[str, Any]:
        """The fields as ActionDraft takes them."""
        def text(field: Any) -> str:
            return (field.data or "").strip()

        return {"kind": self.kind.data or "", "urgency": self.urgency.data or None,
                "meldkamer_code": self.meldkamer.data or "",
                "title_nl": text(self.title_nl), "title_en": text(self.title_en) or None,
                "description_nl": text(self.description_nl),
                "description_en": text(self.description_en) or None,
                "instruction_nl": text(self.instruction_nl),
                "instruction_en": text(self.instruction_en) or None,
                "lat": self.lat.data, "lon": self.lon.data, "radius_m": self.radius_m.data,
                "polygon": text(self.polygon) or None, "national": bool(self.national.data)}



class EndForm(FlaskForm):
    """How an action ended, and a sentence for everyone it reached (Dutch)."""

    outcome_choices = [("", "Kies de afloop")] + [(o.value, LABELS["outcome"][o.value])
                                                   for o in Outcome]
    outcome = StringField()
    text = TextAreaField()


def meldkamer_choices(actor: Actor) -> list[tuple[str, str]]:
    """The meldkamers ACTOR may name (core.permissions.meldkamer_code): its own, or every one
    for an admin; none for an organisation without one."""
    statement = select(Meldkamer.code, Meldkamer.name).order_by(Meldkamer.name)
    if not (actor.unrestricted or actor.any_meldkamer):
        statement = statement.where(Meldkamer.code == actor.meldkamer_code)
    return [(code, f"{name} ({code})") for code, name in db().execute(statement)]
