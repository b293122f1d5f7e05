"""Answers whose timing must not tell what they keep quiet about.

The portal answers alike whether a number is registered or not, but the work behind the
answer differs: a code for a known number is written and queued, an unknown one gets none; a
wrong code for a known number is counted in its row, for an unknown one nothing is written.
That is a few milliseconds, which a patient client can measure. So that work, up to and
including its commit, runs inside `steady`, and the answer leaves no sooner than
`ANSWER_SECONDS` after the work began, whichever way it went.

Only work that the request limits already bound is padded (codes asked for, codes checked):
a refusal by a limit answers at once, tells nothing (the limits count unknown numbers too),
and cannot be used to keep threads waiting.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

#: Far above what the work takes (about 10 ms), well below what a person notices.
ANSWER_SECONDS = 0.2


@contextmanager
def steady(seconds: float = ANSWER_SECONDS) -> Iterator[None]:
    """Let the block take at least SECONDS, however it ends."""
    started = time.monotonic()
    try:
        yield
    finally:
        time.sleep(max(0.0, seconds - (time.monotonic() - started)))
