"""The forms of the municipal pages: an inquiry or preventive message, and the update."""

from __future__ import annotations

import json
from typing import Any

from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import HiddenField, SelectField, StringField, TextAreaField

from core.models import Action, ActionKind, Meldkamer, User
from core.permissions import actor_for_user
from outbound.actions import ActionDraft
from web.console_forms import POLYGON_MAX_CHARS, AreaFields, Number
from web.context import db

#: The Dutch name of what the officer writes, per kind (English in municipal.toml).
TEXT_LABEL = {ActionKind.NEIGHBOURHOOD_INQUIRY: "Uw vraag aan de buurt",
              ActionKind.PREVENTIVE: "Tekst van het bericht"}
TEXT_MISSING = {ActionKind.NEIGHBOURHOOD_INQUIRY: "Vul de vraag aan de buurt in.",
                ActionKind.PREVENTIVE: "Vul de tekst van het bericht in."}
#: create_action's field names as this form calls them.
FIELD = {"description_nl": "text_nl", "description_en": "text_en"}


class MunicipalForm(AreaFields, FlaskForm):
    """An inquiry or preventive message: titles and texts (nl, optional en) and the area."""

    title_nl = StringField()
    title_en = StringField()
    text_nl = TextAreaField()
    text_en = TextAreaField()
    lat = Number()
    lon = Number()
    radius_m = Number(default=1000)
    polygon = HiddenField()
    meldkamer = SelectField(validate_choice=False)
    #: The id of this copy of a new draft's form (`web.submissions`): sent twice, one draft.
    submission = HiddenField()

    @classmethod
    def for_user(cls, user: User, **kwargs: Any) -> MunicipalForm:
        """The form; a meldkamer to choose only for whoever may name any (an admin)."""
        form = cls(**kwargs)
        actor = actor_for_user(user)
        form.meldkamer.choices = [
            (code, f"{name} ({code})") for code, name in
            db().execute(select(Meldkamer.code, Meldkamer.name).order_by(Meldkamer.name))
        ] if actor.unrestricted or actor.any_meldkamer else []
        return form

    @classmethod
    def of_draft(cls, user: User, action: Action) -> MunicipalForm:
        """The form filled in with a draft's values, for changing it."""
        form = cls.for_user(user, formdata=None, title_nl=action.title_nl,
                            title_en=action.title_en, text_nl=action.description_nl,
                            text_en=action.description_en, lat=action.center_lat,
                            lon=action.center_lon, radius_m=action.radius_m)
        form.polygon.data = "" if action.polygon is None else json.dumps(action.polygon)
        form.meldkamer.data = action.meldkamer.code
        return form

    def check(self, kind: ActionKind) -> dict[str, str]:
        """Errors create_action does not judge: numbers, the text (whose meldkamer and
        which area are the permission rules', core.permissions)."""
        self.validate()
        errors = {name: str(messages[0]) for name, messages in self.errors.items()
                  if name != "csrf_token" and messages}
        if not (self.text_nl.data or "").strip():
            errors["text_nl"] = TEXT_MISSING[kind]
        if not (self.polygon.data or "").strip() and "lat" not in errors \
                and "lon" not in errors and (self.lat.data is None or self.lon.data is None):
            errors["area"] = "Klik op de kaart voor het midden van het gebied en geef een straal."
        if len(self.polygon.data or "") > POLYGON_MAX_CHARS:
            errors["area"] = "Het getekende gebied heeft te veel punten."
            self.polygon.data = ""
        return errors

    def draft(self, kind: ActionKind) -> ActionDraft:
        """The fields as create_action takes them (no meldkamer chosen: the user's own)."""
        def text(field: Any) -> str:
            return (field.data or "").strip()

        return ActionDraft(kind=kind.value, title_nl=text(self.title_nl),
                           title_en=text(self.title_en) or None,
                           description_nl=text(self.text_nl),
                           description_en=text(self.text_en) or None,
                           meldkamer_code=self.meldkamer.data or "",
                           lat=self.lat.data, lon=self.lon.data, radius_m=self.radius_m.data,
                           polygon=text(self.polygon) or None)



class UpdateForm(FlaskForm):
    """The one follow-up to everyone an inquiry's e-mail reached."""

    update_nl = TextAreaField()
    update_en = TextAreaField()
