"""What a text written for the public (an action's title and message, its result, an update)
may hold: no control characters, and a title on one line.

Such texts travel on as e-mail subjects, SMS, TwiML and CAP documents. A line break in a
title makes the e-mail header invalid (Python refuses to write it, and every e-mail of the
action fails); other control characters make the XML of a TwiML <Say> invalid. So they are
refused where the text comes in, with a Dutch message, rather than cleaned up on the way out.
"""

from __future__ import annotations

import unicodedata

TITLE_CONTROL = "Een titel is één regel tekst, zonder regeleinden of andere stuurtekens."
TEXT_CONTROL = "De tekst bevat een stuurteken; alleen regeleinden en tabs mogen."
#: What a text of more than one line may hold besides printable characters.
LINE_BREAKS = frozenset("\n\r\t")
#: Separators that end a line without being control characters (Unicode Zl, Zp).
SEPARATORS = frozenset("\u2028\u2029")


def text_problem(value: str, *, one_line: bool) -> str | None:
    """The Dutch reason VALUE cannot be taken (None when it can): a control character, or
    for ONE_LINE any line break at all."""
    allowed = frozenset() if one_line else LINE_BREAKS
    for char in value:
        if char in allowed:
            continue
        if unicodedata.category(char) in {"Cc", "Cs"} or (one_line and char in SEPARATORS):
            return TITLE_CONTROL if one_line else TEXT_CONTROL
    return None
