"""The flows over SIP: a pyVoIP endpoint answers the free number and voice messages.

The same `Flows` as the Twilio webhooks decide what happens; this module only carries the
steps out on a `SipCall`: prompts are played from the rendered cache (8-bit unsigned 8 kHz),
a `Gather` collects RFC 4733 digits with barge-in, a `Dial` rings the meldkamer's SIP URI
(the caller hears ringback meanwhile), plays the whisper to the centralist and bridges the
two legs.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache

from sqlalchemy.orm import Session, sessionmaker

from core.metrics import Metrics
from core.models import Delivery
from ivr.flows import Flows, Incoming, call_ended
from ivr.prompts import Catalogue
from ivr.sip import SipBusy, SipCall, SipEndpoint, SipError, SipNoAnswer, bridge
from ivr.steps import CallState, Dial, DialResult, Digits, Event, Gather, Hangup, Say, Turn
from ivr.tts import PromptRenderer, raw_frames

log = logging.getLogger(__name__)

SAMPLE_RATE = 8000
#: Dutch SIP trunks present caller IDs in national format ("0612345678") as often as in E.164:
#: this transport says so (an RFC 3966 phone-context in the URI still wins). Twilio does not.
CALLER_NATIONAL = "NL"


_CADENCE = 5 * SAMPLE_RATE  # samples in one ring cycle: 1 s on, 4 s off


@lru_cache(maxsize=1)
def _ring_cycle() -> bytes:
    frames = bytearray()
    for n in range(_CADENCE):
        on = n < SAMPLE_RATE
        value = 0.25 * math.sin(2 * math.pi * 425 * n / SAMPLE_RATE) if on else 0.0
        frames.append(128 + int(value * 127))
    return bytes(frames)


def ringback(seconds: float) -> bytes:
    """The Dutch ringing tone (425 Hz, 1 s on, 4 s off) as 8-bit unsigned frames.

    One cycle is computed once and repeated: computing 25 s sample by sample took ~70 ms of
    CPU on every dial (a core's worth at 10 calls/s)."""
    count = int(seconds * SAMPLE_RATE)
    cycles, rest = divmod(count, _CADENCE)
    cycle = _ring_cycle()
    return cycle * cycles + cycle[:rest]


class SipFlowRunner:
    """Carries out turns on SIP calls; one thread per call (pyVoIP's model)."""

    def __init__(self, sessions: sessionmaker[Session], catalogue: Catalogue,
                 renderer: PromptRenderer, *, national_fallback: str,
                 message_text: Callable[[Delivery], str] | None = None,
                 max_call_seconds: float = 3600.0, dial_timeout: int = 20,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 metrics: Metrics | None = None) -> None:
        self.sessions = sessions
        self.catalogue = catalogue
        self.renderer = renderer
        self.national_fallback = national_fallback
        self.message_text = message_text
        self.max_call_seconds = max_call_seconds
        self.dial_timeout = dial_timeout
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.endpoint: SipEndpoint | None = None
        self._frames = lru_cache(maxsize=256)(self._render)
        self._db = _database_turns(sessions)

    def _flows(self, session: Session) -> Flows:
        return Flows(session, self.catalogue, national_fallback=self.national_fallback,
                     message_text=self.message_text, clock=self.clock,
                     dial_timeout=self.dial_timeout, metrics=self.metrics)

    # --- entry points ------------------------------------------------------------------

    def free_number_call(self, call: SipCall) -> None:
        """`on_call` of the free number's endpoint: answer, route, greet, put through."""
        with self.metrics.call("inbound"):
            self._free_number_call(call)

    def _free_number_call(self, call: SipCall) -> None:
        call.answer()
        location = call.location_body()
        with self.sessions() as session:
            flows = self._flows(session)
            with self._db:
                turn = flows.start_free(Incoming(
                    transport="sip", call_id=call.call_id, caller=call.caller,
                    caller_national=CALLER_NATIONAL, called=call.called,
                    pidf=call.body if location is not None else None,
                    content_type=call.content_type if location is not None else None,
                    geolocation_header=call.geolocation_header))
                session.commit()
            self.run(call, flows, session, turn)

    def message_call(self, call: SipCall, delivery_id: int) -> None:
        """An answered outbound voice message: read it, offer 1 (put through) and 2 (again)."""
        with self.metrics.call("outbound"), self.sessions() as session:
            flows = self._flows(session)
            with self._db:
                turn = flows.start_message(delivery_id, transport="sip", call_id=call.call_id)
                session.commit()
            self.run(call, flows, session, turn)

    # --- carrying out turns ------------------------------------------------------------

    def run(self, call: SipCall, flows: Flows, session: Session, turn: Turn) -> None:
        """Carry out TURN and the turns that follow until the call ends."""
        state = turn.state
        outcome: str | None = None
        try:
            while True:
                event = self._carry_out(call, flows, session, turn)
                with self._db:
                    session.commit()
                if turn.ends or event is None:
                    break
                if call.ended and isinstance(event, Digits):
                    outcome = "caller_hung_up"
                    break
                with self._db:
                    turn = flows.advance(turn.state, event)
                    session.commit()
                state = turn.state
        except Exception:
            session.rollback()
            log.exception("SIP call %s failed in its flow", call.call_id)
            outcome = "error"
        finally:
            call.hangup()
            with self._db:
                call_ended(session, self.clock(), record_id=state.record, outcome=outcome)
                session.commit()

    def _carry_out(self, call: SipCall, flows: Flows, session: Session,
                   turn: Turn) -> Event | None:
        for step in turn.steps:
            if call.ended:
                return Digits("") if isinstance(turn.waits_for, Gather) else (
                    DialResult("canceled") if isinstance(turn.waits_for, Dial) else None)
            if isinstance(step, Say):
                call.play(self._audio(step), wait=True)
            elif isinstance(step, Gather):
                # Keys typed ahead (during the previous prompt or a database turn) count, and
                # the first of them cuts this prompt short: a caller who knows the menu.
                for prompt in step.prompts:
                    call.play(self._audio(prompt), wait=False)
                digits = call.collect_dtmf(max_digits=step.max_digits, timeout=step.timeout,
                                           terminator=step.finish_on_key,
                                           lead_keys=step.lead_keys)
                return Digits(digits)
            elif isinstance(step, Dial):
                return self._dial(call, flows, session, turn.state, step)
            elif isinstance(step, Hangup):
                call.hangup()
        return None

    def _dial(self, call: SipCall, flows: Flows, session: Session, state: CallState,
              step: Dial) -> DialResult:
        if self.endpoint is None:
            raise SipError("the runner has no endpoint to dial out on")
        call.play(ringback(step.timeout + 5), wait=False)
        try:
            leg = self.endpoint.dial(step.sip_uri, timeout=step.timeout,
                                     caller_id=(step.caller_id or "anonymous").lstrip("+"))
        except SipBusy:
            return DialResult("busy")
        except SipNoAnswer:
            return DialResult("no-answer")
        except SipError as exc:
            log.warning("dialling %s failed: %s", step.sip_uri, exc)
            return DialResult("failed")
        finally:
            call.stop_playback()
        if call.ended:
            leg.hangup()
            return DialResult("canceled")
        # Commit before the whisper plays: the transaction whisper() began would otherwise stay
        # open for the whole whisper (~10 s), and on SQLite a writer's transaction holds the
        # database's write lock, so every other call's flow would wait behind this one.
        with self._db:
            whisper = flows.whisper(state)
            session.commit()
        for say in whisper:
            leg.play(self._audio(say), wait=True)
        if call.ended:
            leg.hangup()
            return DialResult("canceled")
        bridge(call, leg, max_seconds=self.max_call_seconds)
        return DialResult("completed")

    def _audio(self, say: Say) -> bytes:
        """The frames of SAY: from the prompt cache, or for a private text (the whisper with
        the caller's number) synthesised for this once and kept nowhere."""
        if say.private:
            return self.renderer.speak_once(say.text, say.language)
        return self._frames(say.text, say.language)

    def _render(self, text: str, language: str) -> bytes:
        return raw_frames(self.renderer.render(text, language).u8)


def _database_turns(sessions: sessionmaker[Session]) -> contextlib.AbstractContextManager[object]:
    """What each call thread holds around its short database turns (a flow step and its
    commit; never while audio plays).

    On SQLite, a lock: the database takes one writer at a time anyway (writer sessions begin
    with BEGIN IMMEDIATE), and SQLite's busy handler makes the others poll with back-off sleeps
    of up to 100 ms, so with ~200 calls up the write lock stood idle between turns and flows
    queued for tens of seconds (and for the connection pool behind them). Queueing on a
    Python lock hands the database over at once. Other databases: no lock."""
    bind = sessions.kw.get("bind")
    if bind is not None and bind.dialect.name == "sqlite":
        return threading.Lock()
    return contextlib.nullcontext()
