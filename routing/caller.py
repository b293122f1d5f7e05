"""Caller IDs as they arrive from Twilio-style webhooks and SIP headers, reduced to E.164."""

from __future__ import annotations

import re
from urllib.parse import unquote

import phonenumbers

from core.errors import PhoneNumberError
from core.phone import normalize

MAX_INPUT = 256
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
WITHHELD_WORDS = frozenset({
    "anonymous", "restricted", "private", "unknown", "unavailable", "withheld", "blocked",
    "anonymous.invalid", "nummer onderdrukt", "onbekend", "prive", "privé",
})
#: Caller-ID placeholders of Twilio-style APIs: ANONYMOUS, RESTRICTED, BLOCKED, UNKNOWN and
#: UNAVAILABLE spelled on a phone keypad.
WITHHELD_NUMBERS = frozenset({
    "+266696687", "+7378742833", "+2562533", "+8656696", "+86282452253",
})
NAME_ADDR = re.compile(r'^\s*(?:"(?:[^"\\]|\\.)*"|[^<"]*)\s*<([^>]*)>')
SCHEME = re.compile(r"^(?:sips?|tel):", re.IGNORECASE)


def caller_user(raw: str) -> str:
    """The user part of a caller ID: the number of "sip:+31...@host;user=phone", of a
    name-addr ('"Jan" <sip:0612...@host>'), of "tel:+31-6-..." or the text itself."""
    text = raw.strip()
    if match := NAME_ADDR.match(text):
        text = match[1].strip()
    if SCHEME.match(text):
        text = SCHEME.sub("", text)
        text = unquote(text.split("@", 1)[0].split(";", 1)[0])
    return text.strip()


def is_withheld(raw: str | None) -> bool:
    """True for the ways a withheld or unknown number is spelled (not for garbage)."""
    if raw is None or len(raw) > MAX_INPUT:
        return False
    user = caller_user(raw)
    return user.casefold() in WITHHELD_WORDS or re.sub(r"[\s\-().]", "", user) in WITHHELD_NUMBERS


def parse_caller(raw: str | None) -> str | None:
    """RAW as E.164, or None when the number is withheld, unknown or unreadable.

    Numbers from any country are accepted (a foreign caller simply matches no participant);
    Dutch numbers may be written nationally ("0612345678"). Never raises.
    """
    if raw is None or len(raw) > MAX_INPUT:
        return None
    user = caller_user(raw)
    if not user or user.casefold() in WITHHELD_WORDS:
        return None
    compact = re.sub(r"[\s\-().]", "", user)
    if compact in WITHHELD_NUMBERS or not re.fullmatch(r"\+?[0-9]{3,20}", compact):
        return None
    try:
        number = normalize(compact)
    except PhoneNumberError:
        number = _foreign(compact)
    return number if number and E164.fullmatch(number) else None


def _foreign(compact: str) -> str | None:
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    try:
        parsed = phonenumbers.parse(compact, "NL")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
