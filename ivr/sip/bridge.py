"""Connect two call legs by relaying their audio (pyVoIP has no REFER, so no transfer)."""

from __future__ import annotations

import time

from ivr.sip.call import SAMPLE_RATE, SipCall

_TICK = 0.02
# Audio queued towards a leg beyond this is dropped, so that clock drift between the two
# peers cannot build up delay. Play a whisper with wait=True before bridging.
_MAX_QUEUED = SAMPLE_RATE // 2


def bridge(a: SipCall, b: SipCall, *, max_seconds: float | None = None) -> SipCall | None:
    """Relay audio between A and B until one of them hangs up, then hang up the other; after
    MAX_SECONDS hang up both. Returns the leg that ended first (None when MAX_SECONDS ran out).
    DTMF is not relayed. Blocks the calling thread; adds about one tick (20 ms) of delay."""
    a.read_audio()
    b.read_audio()
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    first: SipCall | None = None
    try:
        while first is None:
            for leg in (a, b):
                if leg.ended:
                    first = leg
                    break
            else:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                _relay(a, b)
                _relay(b, a)
                time.sleep(_TICK)
    finally:
        a.hangup()
        b.hangup()
    return first


def _relay(source: SipCall, sink: SipCall) -> None:
    audio = source.read_audio()
    if not audio:
        return
    if sink.queued_audio() > _MAX_QUEUED:
        sink.stop_playback()
    sink.play(audio, wait=False)
