"""Keyed or typed postcodes: what a caller enters in the IVR, reduced to a Dutch PC4."""

from __future__ import annotations

import re

from core.errors import BurgernetError

MAX_INPUT = 64
#: Four digits, optionally the two letters of a full postcode, optionally the DTMF end key.
POSTCODE = re.compile(r"([0-9]{4})\s*(?:[A-Za-z]{2})?\s*#?")


class PostcodeError(BurgernetError, ValueError):
    """Input that is not a Dutch postcode; the message says why, for the routing detail."""

    error_id = "invalid_postcode"


def parse_postcode(raw: str | None) -> str:
    """The PC4 in RAW: "3441", "3441#", "3441 AB" and "3441ab" all give "3441".

    Only ASCII digits count (str.isdigit would also take other scripts' digits); anything
    else raises PostcodeError with the reason.
    """
    text = (raw or "").strip()
    if not text or text == "#":
        raise PostcodeError("no postcode entered")
    if len(text) > MAX_INPUT:
        raise PostcodeError(f"postcode input is {len(text)} characters long")
    match = POSTCODE.fullmatch(text)
    if match is None:
        digits = re.sub(r"[^0-9]", "", text)
        if re.fullmatch(r"[0-9\s#*]*", text) and len(digits) != 4:
            raise PostcodeError(f"postcode {text!r} has {len(digits)} digits, not 4")
        raise PostcodeError(f"postcode {text!r} is not 4 digits (optionally with two letters)")
    pc4 = match[1]
    if pc4[0] == "0":
        raise PostcodeError(f"postcode {pc4} starts with 0; Dutch postcodes start with 1-9")
    return pc4


def postcode_or_reason(raw: str | None) -> tuple[str | None, str | None]:
    """(pc4, None) for a good postcode, (None, reason) otherwise; never raises."""
    try:
        return parse_postcode(raw), None
    except PostcodeError as exc:
        return None, str(exc)
