"""Personal data in logs and kept texts: masks for phone numbers, verification codes, personal
links and e-mail addresses, a log formatter that applies them to every line, and the erasure of
one participant's number from the free texts the police keep (tips, routing reasons).

A log is read by more people than the data it describes and kept longer, so nothing in it
may identify a participant or unlock anything: a number keeps its country and last four
digits (+31 6 ****5678), an address its first letter and domain, a code nothing.
"""

from __future__ import annotations

import logging
import re

import phonenumbers

CODE_MASK = "******"
SECRET_MASK = "***"
#: What a participant's number becomes in a tip or a call record they leave behind.
NUMBER_REMOVED = "[nummer verwijderd]"

#: Query parameters whose values say nothing about a person and unlock nothing: everything
#: else in a logged URL (a code, a token, a number, a search) is masked.
SAFE_QUERY_KEYS = frozenset({
    "lang", "page", "per_page", "limit", "status", "kind", "next",
    "flow", "record", "stage", "attempts", "tried", "delivery",  # the IVR's call state
    "van", "tot", "doel", "sorteer", "volgorde", "handeling", "soort",  # statistics, audit
})
#: The path of a personal reaction link (`outbound.links.REACTION_PATH`) and its thanks page.
LINK_PATHS = ("reactie",)
OPEN_PAGES = frozenset({"bedankt"})

_SEP = r"[ \t\u00a0\-/()]"
# A number in text: international (+31…, 0031…), Dutch national (0 and nine digits) or E.164
# without its plus as SIP and Twilio write it (31…). Never inside a word or a longer number.
_PHONE = re.compile(
    rf"(?<![\w+%])(?:(?:\+|00){_SEP}*[1-9](?:{_SEP}{{0,3}}\d){{6,14}}"
    rf"|0(?:{_SEP}{{0,3}}\d){{9}}"
    rf"|31[1-9]\d{{7,8}})(?![\d])")
_EMAIL = re.compile(r"(?<![\w.+*-])(sips?:)?([\w.+-]+)@((?:[\w-]+\.)+[A-Za-z][\w-]*)")
_CODE = re.compile(r"(?i)(\bcode\b[^0-9\n]{0,24}?|@\S+\s+#)(\d{4,8})(?!\d)")
_LINK = re.compile(rf"(/(?:{'|'.join(LINK_PATHS)})/)([^\s/?#\"'<>]+)")
_QUERY = re.compile(r"([?&])([^=&\s#\"'<>?]+)=([^&\s#\"'<>]*)")


def mask_phone(number: str) -> str:
    """NUMBER as +31 6 ****5678: the country and the last four digits, never the rest."""
    compact = re.sub(r"[^\d+]", "", number or "")
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    elif compact.startswith("31"):  # E.164 without its plus, as SIP and Twilio write it
        compact = "+" + compact
    try:
        parsed = phonenumbers.parse(compact, "NL")
    except phonenumbers.NumberParseException:
        return "****" + compact[-2:] if len(compact) > 4 else "****"
    national = str(parsed.national_number)
    if len(national) < 8:
        return f"+{parsed.country_code} ****{national[-2:]}"
    return f"+{parsed.country_code} {national[0]} {'*' * (len(national) - 5)}{national[-4:]}"


def mask_email(address: str) -> str:
    """ADDRESS as d***@example.org."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}{SECRET_MASK}@{domain}" if domain else SECRET_MASK


def redact(text: str) -> str:
    """TEXT with every phone number, e-mail address, verification code, personal link token
    and query value that is not on the safe list masked."""
    if not text:
        return text
    text = _LINK.sub(_link, text)
    text = _QUERY.sub(_query, text)
    text = _CODE.sub(lambda m: m[1] + CODE_MASK, text)
    text = _EMAIL.sub(_email, text)
    return _PHONE.sub(lambda m: mask_phone(m[0]), text)


def redact_query(query: str) -> str:
    """A bare query string (a=1&b=2) with the values of unsafe keys masked."""
    return _QUERY.sub(_query, "?" + query)[1:] if query else query


def _link(match: re.Match[str]) -> str:
    return match[0] if match[2] in OPEN_PAGES else match[1] + SECRET_MASK


def _query(match: re.Match[str]) -> str:
    if match[2].lower() in SAFE_QUERY_KEYS or not match[3]:
        return match[0]
    return f"{match[1]}{match[2]}={SECRET_MASK}"


def _email(match: re.Match[str]) -> str:
    if match[1]:  # a SIP URI: its user part is a number (masked next) or a service name
        return match[0]
    return mask_email(f"{match[2]}@{match[3]}")


class RedactingFormatter(logging.Formatter):
    """Formats a record with the handler's own formatter, then passes the text, traceback
    included, through `redact`. The record itself is left alone for other handlers."""

    def __init__(self, inner: logging.Formatter | None = None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


def install_redaction(logger: logging.Logger) -> None:
    """Make every handler of LOGGER write its lines redacted (once)."""
    for handler in logger.handlers:
        if not isinstance(handler.formatter, RedactingFormatter):
            handler.setFormatter(RedactingFormatter(handler.formatter))


# --- erasing one number from kept texts ---------------------------------------------------

_ANY_SEP = r"[ \t\u00a0\-./()]*"


def number_pattern(e164: str) -> re.Pattern[str]:
    """Every way E164 may be written in a text: +31612345678, +31 6 1234 5678,
    +31 (0)6 12345678, 0031 6…, 31612345678 (a SIP user), 06-12345678, 06 123 456 78, …"""
    parsed = phonenumbers.parse(e164)
    country, national = str(parsed.country_code), str(parsed.national_number)
    spaced = _ANY_SEP.join(national)
    prefix = (rf"(?:(?:\+|00){_ANY_SEP}{country}{_ANY_SEP}(?:\(\s*0\s*\){_ANY_SEP})?"
              rf"|{country}|0{_ANY_SEP})?")
    return re.compile(rf"(?<!\d){prefix}{spaced}(?!\d)")


def national_digits(e164: str) -> str:
    """The national significant number (612345678): in every written form, once the
    separators are taken out (how the database finds the rows to look at)."""
    return str(phonenumbers.parse(e164).national_number)


def strip_number(text: str, e164: str, email: str | None = None) -> str:
    """TEXT without E164 however it is written (and without EMAIL, if given)."""
    if not text:
        return text
    cleaned = number_pattern(e164).sub(NUMBER_REMOVED, text)
    if email:
        cleaned = re.sub(re.escape(email), SECRET_MASK, cleaned, flags=re.IGNORECASE)
    return cleaned
