"""Caller IDs as they arrive from Twilio-style webhooks and SIP headers, reduced to E.164.

A number is only ever read as a national one when the transport says its caller IDs may come
in national format (`parse_caller`'s NATIONAL, or an RFC 3966 phone-context in the URI itself),
and then only with the trunk prefix ("0612345678"). Twilio documents From in E.164, so a
Twilio "From" of "612345678" or "31612345678" is no number at all, not +31612345678: a guess
would tie the call or the SMS (STOP, a tip) to a participant who never sent it.
"""

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
#: The caller-ID placeholders Twilio documents ("Why am I getting calls from these strange
#: numbers?"): ANONYMOUS, RESTRICTED, BLOCKED, UNKNOWN and UNAVAILABLE spelled on a phone
#: keypad, and +464 for "No Caller ID".
WITHHELD_NUMBERS = frozenset({
    "+266696687", "+7378742833", "+2562533", "+8656696", "+86282452253", "+464",
})
NAME_ADDR = re.compile(r'^\s*(?:"(?:[^"\\]|\\.)*"|[^<"]*)\s*<([^>]*)>')
SCHEME = re.compile(r"^(?:sips?|tel):", re.IGNORECASE)
PHONE_CONTEXT = re.compile(r";phone-context=\+([0-9]{1,3})(?=[;@]|$)", re.IGNORECASE)
SEPARATORS = re.compile(r"[\s\-().]")
NATIONAL = re.compile(r"0[1-9][0-9]+")


def caller_user(raw: str) -> str:
    """The user part of a caller ID: the number of "sip:+31...@host;user=phone", of a
    name-addr ('"Jan" <sip:0612...@host>'), of "tel:+31-6-..." or the text itself."""
    return _user_and_context(raw)[0]


def _user_and_context(raw: str) -> tuple[str, str | None]:
    """The user part and the country (ISO code) of its RFC 3966 phone-context, if any."""
    text = raw.strip()
    if match := NAME_ADDR.match(text):
        text = match[1].strip()
    context = None
    if SCHEME.match(text):
        text = SCHEME.sub("", text)
        user = unquote(text.split("@", 1)[0])
        if found := PHONE_CONTEXT.search(user):
            region = phonenumbers.region_code_for_country_code(int(found[1]))
            context = None if region == phonenumbers.UNKNOWN_REGION else region
        text = user.split(";", 1)[0]
    return text.strip(), context


def _withheld_number(compact: str) -> bool:
    return compact in WITHHELD_NUMBERS or "+" + compact in WITHHELD_NUMBERS


def is_withheld(raw: str | None) -> bool:
    """True for the ways a withheld or unknown number is spelled (not for garbage)."""
    if raw is None or len(raw) > MAX_INPUT:
        return False
    user = caller_user(raw)
    return user.casefold() in WITHHELD_WORDS or _withheld_number(SEPARATORS.sub("", user))


def parse_caller(raw: str | None, national: str | None = None) -> str | None:
    """RAW as E.164, or None when the number is withheld, unknown or unreadable.

    International numbers ("+31...", "0031...") are accepted from any country (a foreign
    caller simply matches no participant). Digits without either are read as a national
    number of NATIONAL (an ISO country code, e.g. "NL") only when the transport says its
    caller IDs come in national format, or of the country of the URI's phone-context; and
    then only with the trunk prefix ("0612345678"). Never raises.
    """
    if raw is None or len(raw) > MAX_INPUT:
        return None
    user, context = _user_and_context(raw)
    if not user or user.casefold() in WITHHELD_WORDS:
        return None
    compact = SEPARATORS.sub("", user)
    if _withheld_number(compact) or not re.fullmatch(r"\+?[0-9]{3,20}", compact):
        return None
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    region = "NL"
    if not compact.startswith("+"):
        region = context or national or ""
        if not region or not NATIONAL.fullmatch(compact):
            return None
    number: str | None
    try:
        number = normalize(compact, default_region=region)
    except PhoneNumberError:
        number = _foreign(compact, region)
    return number if number and E164.fullmatch(number) else None


def _foreign(compact: str, region: str) -> str | None:
    try:
        parsed = phonenumbers.parse(compact, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
