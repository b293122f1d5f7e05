"""Phone numbers: everything stored is E.164; Dutch, Belgian and German numbers are accepted."""

from __future__ import annotations

import re

import phonenumbers

from core.errors import PhoneNumberError

ACCEPTED_REGIONS = frozenset({"NL", "BE", "DE"})

#: +31 69 is not allocated in the Dutch numbering plan (06-1..06-5 and 06-8 are mobile,
#: 06-6 pagers, 06-7 data services): no subscriber can hold such a number, so the demo
#: population, the example meldkamer numbers and the tests use it and nothing else.
FICTIONAL = re.compile(r"^\+3169\d{7}$")


def is_fictional(e164: str) -> bool:
    """True for numbers in the block reserved here for demo and test data."""
    return bool(FICTIONAL.match(e164))


def can_receive_sms(e164: str) -> bool:
    """True for a mobile number of the accepted countries, the only numbers a code by SMS may
    go to: Dutch 06 (not 066 pagers, 067 data services or 097 machine-to-machine numbers),
    Belgian and German mobile ranges for people living across the border, and the fictional
    demo block. Fixed lines, free, premium-rate and service numbers are not: an SMS to them
    is at best lost and at worst paid to whoever runs them (SMS pumping)."""
    if is_fictional(e164):
        return True
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return False
    region = phonenumbers.region_code_for_number(number)
    if (region not in ACCEPTED_REGIONS or not phonenumbers.is_valid_number(number)
            or phonenumbers.number_type(number) != phonenumbers.PhoneNumberType.MOBILE):
        return False
    return region != "NL" or str(number.national_number).startswith("6")


def normalize(raw: str, *, default_region: str = "NL", allow_fictional: bool = True) -> str:
    """RAW as an E.164 string (+31612345678); raises PhoneNumberError saying why not.

    International ("+31 6 ...", "0031 6 ...") or national with the trunk prefix ("06 ...",
    read in DEFAULT_REGION). Bare digits ("612345678", "31612345678") are refused rather than
    guessed into a number of DEFAULT_REGION: they could be anyone's.
    """
    text = (raw or "").strip()
    if not text:
        raise PhoneNumberError("phone number is empty")
    compact = re.sub(r"[\s\-().]", "", text)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if compact[:1].isdigit() and not compact.startswith("0"):
        raise PhoneNumberError(f"{text!r} is not a phone number: write it with + and the "
                               "country code, or nationally with a leading 0")
    if FICTIONAL.match(compact) or FICTIONAL.match("+31" + compact.removeprefix("0")):
        if not allow_fictional:
            raise PhoneNumberError(f"{text!r} is a fictional demo number")
        return compact if compact.startswith("+") else "+31" + compact.removeprefix("0")
    try:
        number = phonenumbers.parse(compact, default_region)
    except phonenumbers.NumberParseException:
        raise PhoneNumberError(f"{text!r} is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise PhoneNumberError(f"{text!r} is not a valid phone number")
    region = phonenumbers.region_code_for_number(number)
    if region not in ACCEPTED_REGIONS:
        raise PhoneNumberError(
            f"{text!r} is a number from {region or 'an unknown country'}; "
            "only Dutch, Belgian and German numbers are accepted")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
