"""The participant portal's forms: every check answers in Dutch (English with ?lang=en)."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    Field,
    RadioField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
)
from wtforms.validators import DataRequired, InputRequired, Length, Regexp, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from core.errors import PhoneNumberError
from core.models import Channel, Language, LocationKind, Participant, Postcode
from core.participants import (
    CLOCK,
    EMAIL,
    InvalidPostcode,
    NotDutchMobile,
    UnknownPostcode,
    mobile_number,
    postcode_area,
)
from web.context import db
from web.i18n import translate

LANGUAGES = [SelectChoice(Language.NL.value, "Nederlands"),
             SelectChoice(Language.EN.value, "English")]
CHANNEL_LABELS = {Channel.VOICE: "Spraakbericht (u wordt gebeld)", Channel.SMS: "Sms-bericht",
                  Channel.EMAIL: "E-mail", Channel.PUSH: "App-melding (push)"}
PLACE_KINDS = [SelectChoice(LocationKind.HOME.value, "Thuis (vervangt uw huidige woonadres)"),
               SelectChoice(LocationKind.WORK.value, "Werk"),
               SelectChoice(LocationKind.CURRENT.value, "Waar ik nu ben (tijdelijk)")]
#: How long a current place holds, in hours (at most a day, as the core allows).
HOURS = ["1", "2", "4", "8", "12", "24"]
NOT_A_CHOICE = "Kies een van de mogelijkheden."


class MultiCheckboxField(SelectMultipleField):
    """A set of checkboxes, one per choice."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def _phone(form: FlaskForm, field: Field) -> None:
    """The number must be a Dutch mobile one; the E.164 form is kept on the form."""
    if not field.data:
        return
    try:
        form.e164 = mobile_number(field.data)
    except NotDutchMobile:
        raise ValidationError(translate(
            "Alleen Nederlandse mobiele nummers (beginnend met 06) kunnen meedoen.")) from None
    except PhoneNumberError:
        raise ValidationError(translate(
            "Dit is geen geldig telefoonnummer. Vul uw mobiele nummer in, zoals "
            "06 12345678.")) from None


def _postcode(form: FlaskForm, field: Field) -> None:
    """The postcode must be in the reference data; PC6 is read as its PC4 area."""
    if not field.data:
        return
    try:
        form.area = postcode_area(db(), field.data)
    except InvalidPostcode:
        raise ValidationError(translate(
            "Vul een postcode in zoals 3511 of 3511 AB.")) from None
    except UnknownPostcode:
        raise ValidationError(translate("Postcode {postcode} bestaat niet.",
                                        postcode=field.data.strip().upper())) from None


PHONE = [InputRequired("Vul uw mobiele nummer in."),
         Length(max=40, message="Dit nummer is te lang."), _phone]
POSTCODE = [InputRequired("Vul uw postcode in."),
            Length(max=12, message="Vul een postcode in zoals 3511 of 3511 AB."), _postcode]


class SignupForm(FlaskForm):
    phone = StringField("Mobiel nummer", validators=PHONE)
    postcode = StringField("Postcode van uw woonadres", validators=POSTCODE)
    language = RadioField("Taal van de berichten", choices=LANGUAGES, default="nl",
                          validators=[InputRequired("Kies een taal.")],
                          invalid_choice_message=NOT_A_CHOICE)
    consent = BooleanField("Ik geef toestemming", validators=[
        DataRequired("Zonder uw toestemming kunnen wij u niet aanmelden.")])
    e164: str
    area: Postcode


class LoginForm(FlaskForm):
    phone = StringField("Mobiel nummer", validators=PHONE)
    e164: str


class CodeForm(FlaskForm):
    code = StringField("Code uit de sms", validators=[
        InputRequired("Vul de code uit de sms in."),
        Regexp(r"^\s*\d{6}\s*$", message="De code bestaat uit 6 cijfers.")])


class PreferencesForm(FlaskForm):
    """Channels, e-mail address, language and per channel a quiet window."""

    channels = MultiCheckboxField("Hoe wilt u berichten ontvangen?",
                                  choices=[SelectChoice(c.value, label) for c, label in
                                           CHANNEL_LABELS.items()],
                                  invalid_choice_message=NOT_A_CHOICE)
    email = StringField("E-mailadres", validators=[Length(max=254, message=(
        "Dit e-mailadres is te lang."))])
    language = RadioField("Taal van de berichten", choices=LANGUAGES,
                          validators=[InputRequired("Kies een taal.")],
                          invalid_choice_message=NOT_A_CHOICE)

    def validate_channels(self, field: Field) -> None:
        if not field.data:
            raise ValidationError(translate(
                "Kies minstens één manier. Wilt u niets meer ontvangen? Meld u dan af."))

    def validate_email(self, field: Field) -> None:
        address = (field.data or "").strip()
        if address and not EMAIL.match(address):
            raise ValidationError(translate(
                "Vul een geldig e-mailadres in, zoals naam@voorbeeld.nl."))
        if not address and Channel.EMAIL.value in (self.channels.data or []):
            raise ValidationError(translate(
                "Voor berichten per e-mail hebben wij uw e-mailadres nodig."))

    def validate(self, extra_validators: Any = None) -> bool:
        valid = super().validate(extra_validators)
        return self._check_quiet_hours() and valid

    def quiet_field(self, channel: Channel, end: str) -> Field:
        return self[f"quiet_{channel.value}_{end}"]

    def _check_quiet_hours(self) -> bool:
        return all([self._check_window(channel) for channel in Channel])

    def _check_window(self, channel: Channel) -> bool:
        start, until = self.quiet_field(channel, "from"), self.quiet_field(channel, "to")
        values = [(f.data or "").strip() for f in (start, until)]
        if not any(values):
            return True
        missing = {0: "Vul ook het begin in, of laat beide leeg.",
                   1: "Vul ook het einde in, of laat beide leeg."}
        valid = True
        for index, field in enumerate((start, until)):
            if not values[index]:
                field.errors.append(translate(missing[index]))
                valid = False
            elif not CLOCK.match(values[index]):
                field.errors.append(translate("Gebruik uu:mm, bijvoorbeeld 22:00."))
                valid = False
        if valid and _minutes(values[0]) == _minutes(values[1]):
            until.errors.append(translate("Begin en einde mogen niet gelijk zijn."))
            valid = False
        return valid

    def quiet_hours(self) -> dict[str, list[str]]:
        """The windows filled in, per channel, as the core stores them."""
        hours = {}
        for channel in Channel:
            start, until = (self.quiet_field(channel, end).data or "" for end in ("from", "to"))
            if start.strip() and until.strip():
                hours[channel.value] = [start.strip(), until.strip()]
        return hours

    @classmethod
    def of(cls, participant: Participant) -> PreferencesForm:
        """The form filled in with what the participant chose before."""
        data: dict[str, Any] = {
            "channels": [c.value for c in Channel if participant.has_channel(c)],
            "email": participant.email or "", "language": Language(participant.language).value}
        for channel, (start, until) in (participant.quiet_hours or {}).items():
            data[f"quiet_{channel}_from"], data[f"quiet_{channel}_to"] = start, until
        return cls(formdata=None, data=data, prefix="prefs")


def _minutes(clock: str) -> int:
    match = CLOCK.match(clock)
    assert match is not None
    return int(match[1]) * 60 + int(match[2])


for _channel in Channel:
    for _end, _label in (("from", "Stil vanaf"), ("to", "Stil tot")):
        setattr(PreferencesForm, f"quiet_{_channel.value}_{_end}",
                StringField(_label, validators=[Length(max=5, message=(
                    "Gebruik uu:mm, bijvoorbeeld 22:00."))]))


class PlaceForm(FlaskForm):
    kind = SelectField("Soort plaats", choices=PLACE_KINDS, default=LocationKind.WORK.value,
                       invalid_choice_message=NOT_A_CHOICE)
    postcode = StringField("Postcode", validators=POSTCODE)
    hours = SelectField("Geldig voor (uren)", choices=[SelectChoice(h) for h in HOURS], default="8",
                        invalid_choice_message=NOT_A_CHOICE)
    area: Postcode


class DeleteForm(FlaskForm):
    confirm = BooleanField("Ja, verwijder mijn gegevens", validators=[
        DataRequired("Vink aan dat u uw gegevens echt wilt verwijderen.")])
