"""Dutch first, English available: the language of a request and the English catalogue."""

from __future__ import annotations

import tomllib
from pathlib import Path

from flask import request, session

LANGUAGES = ("nl", "en")
#: One catalogue per part of the site (console.toml, portal.toml, ...): "Dutch" = "English".
CATALOGUES = Path(__file__).parent / "translations"

#: English for every Dutch interface text; the Dutch text is the key.
ENGLISH = {
    "Inloggen": "Log in",
    "Uitloggen": "Log out",
    "E-mailadres": "E-mail address",
    "Wachtwoord": "Password",
    "Onjuist e-mailadres of wachtwoord.": "Incorrect e-mail address or password.",
    "Vul dit veld in.": "Please fill in this field.",
    "Log in om verder te gaan.": "Please log in to continue.",
    "Welkom": "Welcome",
    "Menu": "Menu",
    "Deelnemen": "Take part",
    "Inloggen medewerkers": "Staff log in",
    "Acties": "Actions",
    "Buurtonderzoek en berichten": "Neighbourhood inquiries and messages",
    "Statistiek": "Statistics",
    "Auditlog": "Audit log",
    "API-sleutels": "API keys",
    "Rol": "Role",
    "Organisatie": "Organisation",
    "beheerder": "administrator",
    "centralist": "centralist",
    "gemeentelijk medewerker": "municipality officer",
    "Het sessieformulier is verlopen; probeer het opnieuw.":
        "The form has expired; please try again.",
    "Te veel pogingen; probeer het over een minuut opnieuw.":
        "Too many attempts; please try again in a minute.",
}



def _load_catalogues() -> None:
    for path in sorted(CATALOGUES.glob("*.toml")):
        with path.open("rb") as file:
            for dutch, english in tomllib.load(file).items():
                if not isinstance(english, str):
                    raise ValueError(f"{path}: {dutch!r} must map to a string")
                if ENGLISH.get(dutch, english) != english:
                    raise ValueError(f"{path}: {dutch!r} is translated differently elsewhere")
                ENGLISH[dutch] = english


_load_catalogues()


def current_language() -> str:
    """?lang= switches and is remembered; otherwise the browser's preference, else Dutch."""
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        session["lang"] = asked
        return asked
    remembered = session.get("lang")
    if remembered in LANGUAGES:
        return str(remembered)
    return request.accept_languages.best_match(LANGUAGES, default="nl") or "nl"


def translate(text: str, **values: object) -> str:
    """TEXT in the request's language, with {placeholders} filled from VALUES."""
    chosen = ENGLISH.get(text, text) if current_language() == "en" else text
    return chosen.format(**values) if values else chosen
