"""SMS length: GSM-7 when every character fits the GSM 03.38 alphabet, UCS-2 otherwise.

A single GSM-7 SMS holds 160 septets (the extension characters € [ ] { } \\ ^ ~ | take two);
a concatenated one 153 per part, since the header takes the rest. UCS-2 holds 70 UTF-16 units,
67 per part. One character outside GSM-7 turns the whole message into UCS-2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)

LIMITS = {"GSM-7": (160, 153), "UCS-2": (70, 67)}


@dataclass(frozen=True)
class SmsSize:
    """How a text goes out: its encoding, its length in that encoding's units, its parts."""

    encoding: str
    units: int
    segments: int


def sms_size(text: str) -> SmsSize:
    """The encoding, length and number of parts of TEXT as one (concatenated) SMS."""
    try:
        units, encoding = len(text.encode("gsm03.38")), "GSM-7"
    except UnicodeEncodeError:
        units, encoding = len(text.encode("utf-16-le")) // 2, "UCS-2"
    single, part = LIMITS[encoding]
    segments = 1 if units <= single else math.ceil(units / part)
    return SmsSize(encoding, units, segments)
