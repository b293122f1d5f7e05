"""The call flows: the free number, and the voice message that offers "press 1".

Rules that hold in every flow:
- the caller never waits in silence: every `Gather` has a prompt and a timeout, and a timeout
  moves the call on;
- never a dead end: a meldkamer that is busy or does not answer hands over to its fallback,
  then to the national fallback, and only when all of them fail does the caller hear
  "all lines busy, call 112 in an emergency";
- every call leaves a `CallRecord` with why it went where it went.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.metrics import Metrics
from core.models import (
    Action,
    CallDirection,
    CallRecord,
    Delivery,
    Language,
    Meldkamer,
    Participant,
)
from ivr.prompts import Catalogue
from ivr.steps import (
    DIAL_STATUSES,
    CallState,
    Dial,
    DialResult,
    Digits,
    Event,
    FlowError,
    Gather,
    Hangup,
    Say,
    Step,
    Turn,
)
from routing.postcode import PostcodeError, parse_postcode
from routing.resolve import RouteDecision, RouteRequest, fallback_for, resolve, route_to

FREE = "free"
MESSAGE = "message"

#: The greeting's key for English. It cannot begin a postcode; any digit does (the caller types
#: the postcode ahead). Not 0 as well: many phone menus use 0 for an operator, and a Dutch
#: caller who presses it out of habit should not end up in English.
ENGLISH_KEY = "*"
#: Routes that a postcode typed ahead during the greeting does not change (`_on_greeting`).
FIRM_ROUTES = ("action", "pidf", "coordinates")
POSTCODE_DIGITS = 4
POSTCODE_ATTEMPTS = 3
GREETING_TIMEOUT = 3
#: Meldkamers tried per call: the routed one, its fallback, the national fallback (~1 min).
MELDKAMERS_PER_CALL = 3
MESSAGE_REPEATS = 3

#: How the centralist hears why the call came to them.
REASONS = {
    "nl": {"action": "de actie die de beller ontving", "pidf": "de locatie van het toestel",
           "coordinates": "de locatie van het toestel",
           "participant_location": "het geregistreerde adres van de beller",
           "postcode": "de ingetoetste postcode", "national_fallback": "de landelijke terugval",
           "fallback": "doorschakeling van een bezette meldkamer"},
    "en": {"action": "the action the caller received", "pidf": "the location of the phone",
           "coordinates": "the location of the phone",
           "participant_location": "the caller's registered address",
           "postcode": "the postcode keyed in", "national_fallback": "the national fallback",
           "fallback": "overflow from a busy meldkamer"},
}


@dataclass(frozen=True)
class Incoming:
    """What the transport knows about a new call on the free number; CALLER_NATIONAL as in
    `RouteRequest`."""

    transport: str
    call_id: str | None
    caller: str | None
    called: str | None
    caller_national: str | None = None
    pidf: str | bytes | None = None
    content_type: str | None = None
    geolocation_header: str | None = None
    lat: float | None = None
    lon: float | None = None


class Flows:
    """Runs the flows on one database session; the caller commits after each turn."""

    def __init__(self, session: Session, catalogue: Catalogue, *, national_fallback: str,
                 message_text: Callable[[Delivery], str] | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 dial_timeout: int = 20, whisper_language: str = "nl",
                 metrics: Metrics | None = None) -> None:
        self.session = session
        self.catalogue = catalogue
        self.national_fallback = national_fallback
        self.message_text = message_text
        self.clock = clock
        self.dial_timeout = dial_timeout
        self.whisper_language = whisper_language
        self.metrics = metrics

    # --- entry points ------------------------------------------------------------------

    def start_free(self, call: Incoming) -> Turn:
        """A call on the free number: route it at once, then greet. The same call again (a
        replayed webhook) is greeted on the record it already has."""
        record = self._existing(call.transport, call.call_id, CallDirection.INBOUND)
        if record is None:
            decision = resolve(self.session, RouteRequest(
                caller=call.caller, caller_national=call.caller_national, called=call.called,
                lat=call.lat, lon=call.lon, pidf=call.pidf,
                content_type=call.content_type, geolocation_header=call.geolocation_header),
                self.clock(), national_fallback=self.national_fallback)
            now = self.clock()
            record = CallRecord(direction=CallDirection.INBOUND, transport=call.transport,
                                provider_call_id=call.call_id, caller=decision.caller,
                                called=(call.called or "")[:255] or None,
                                participant_id=decision.participant_id, started_at=now,
                                answered_at=now)
            self._route(record, decision)
            record = self._add_once(record)
        language = self._language_of(record.participant_id)
        state = CallState(flow=FREE, record=record.id, stage="greeting", language=language)
        greeting = Gather((self._say("greeting", language),), max_digits=POSTCODE_DIGITS,
                          timeout=GREETING_TIMEOUT, finish_on_key="#", lead_keys=ENGLISH_KEY)
        return Turn((greeting,), state)

    def start_message(self, delivery_id: int, *, transport: str, call_id: str | None) -> Turn:
        """An answered outbound voice message: read it, then offer 1 (connect) or 2 (repeat)."""
        delivery = self.session.get(Delivery, delivery_id)
        if delivery is None:
            raise FlowError(f"delivery {delivery_id} does not exist")
        record = self._message_record(delivery, transport, call_id)
        state = CallState(flow=MESSAGE, record=record.id, stage="menu",
                          language=Language(delivery.language).value, delivery=delivery.id)
        return self._menu(state, delivery, intro=True)

    def start_machine(self, delivery_id: int, *, transport: str, call_id: str | None,
                      fax: bool = False) -> Turn:
        """An outbound voice message that a machine answered, once its greeting has ended
        (the transport's answering machine detection): the message once, without the menu,
        then hang up; a fax only hangs up. The call counts as left on voicemail, not as
        answered by a person."""
        delivery = self.session.get(Delivery, delivery_id)
        if delivery is None:
            raise FlowError(f"delivery {delivery_id} does not exist")
        if self.message_text is None:
            raise FlowError("the message flow needs the message text")
        record = self._message_record(delivery, transport, call_id)
        record.outcome = "fax" if fax else "voicemail"
        language = Language(delivery.language).value
        state = CallState(flow=MESSAGE, record=record.id, stage="menu", language=language,
                          delivery=delivery.id)
        if fax:
            return Turn((Hangup(),), state)
        return Turn((self._say("outbound_intro", language),
                     Say(self.message_text(delivery), language), Hangup()), state)

    def _message_record(self, delivery: Delivery, transport: str,
                        call_id: str | None) -> CallRecord:
        """The record of this outbound call: made now, or found when the webhook is replayed."""
        record = self._existing(transport, call_id, CallDirection.OUTBOUND)
        if record is not None:
            return record
        participant = self.session.get(Participant, delivery.participant_id)
        now = self.clock()
        return self._add_once(CallRecord(
            direction=CallDirection.OUTBOUND, transport=transport, provider_call_id=call_id,
            caller=participant.phone if participant else None,
            participant_id=delivery.participant_id, action_id=delivery.action_id,
            started_at=now, answered_at=now, outcome="listening"))

    def advance(self, state: CallState, event: Event) -> Turn:
        """The next turn of a call after EVENT."""
        record = self.session.get(CallRecord, state.record)
        if record is None:
            raise FlowError(f"call record {state.record} does not exist")
        if record.ended_at is not None:  # a replayed webhook of a call that is over
            return Turn((Hangup(),), state)
        if state.stage == "dial" and state.flow in (FREE, MESSAGE):
            if not isinstance(event, DialResult):
                raise FlowError("a dial stage takes a dial result")
            return self._on_dial(state, record, event)
        on_digits: dict[tuple[str, str], Callable[[CallState, CallRecord, Digits], Turn]] = {
            (FREE, "greeting"): self._on_greeting,
            (FREE, "postcode"): self._on_postcode,
            (MESSAGE, "menu"): self._on_menu,
        }
        handler = on_digits.get((state.flow, state.stage))
        if handler is None:
            raise FlowError(f"no stage {state.stage!r} in flow {state.flow!r}")
        if not isinstance(event, Digits):
            raise FlowError("this stage takes digits")
        return handler(state, record, event)

    def whisper(self, state: CallState) -> tuple[Say, ...]:
        """What the centralist hears on answering, before the caller is connected."""
        record = self._record(state)
        record.connected_at = record.connected_at or self.clock()
        return (self._whisper_text(record),)

    # --- free number -------------------------------------------------------------------

    def _on_greeting(self, state: CallState, record: CallRecord, event: Digits) -> Turn:
        """The keys pressed during the greeting: "*" for English, then perhaps a postcode
        typed ahead, taken as if keyed at the postcode prompt (its first attempt).

        A caller routed by an action or by the phone's location is put through there whatever
        they key: the action's meldkamer has the case, and the network knows where the phone
        is. A route by the participant's registered places gives way to a valid postcode keyed
        now, since that says where the caller is at this moment."""
        keys = event.value
        if keys[:1] == ENGLISH_KEY:
            state, keys = state.but(language="en"), keys[1:]
        typed = bool(keys.strip("#*"))
        reason = (record.routing_reason or "national_fallback").split(":", 1)[0]
        if reason == "national_fallback":
            if typed:
                return self._on_postcode(state.but(stage="postcode"), record, Digits(keys),
                                         note="typed ahead during the greeting")
            return self._ask_postcode(state.but(stage="postcode"), ())
        if typed and reason not in FIRM_ROUTES:
            decision, _ = self._postcode_route(keys)
            if decision is not None:
                self._route(record, decision, note="typed ahead during the greeting, "
                                                   "instead of the registered place")
                return self._connect(state, record,
                                     first=(self._say("connecting", state.language),))
        if typed:
            self._note(record, f"keys {keys[:8]} during the greeting not used")
        return self._connect(state, record, first=self._announce(state, record))

    def _on_postcode(self, state: CallState, record: CallRecord, event: Digits,
                     note: str = "") -> Turn:
        attempts = state.attempts + 1
        decision, problem = self._postcode_route(event.value)
        if decision is not None:
            self._route(record, decision, note=note)
            return self._connect(state, record, first=(self._say("connecting", state.language),))
        if attempts >= POSTCODE_ATTEMPTS:
            decision = resolve(self.session, RouteRequest(), self.clock(),
                               national_fallback=self.national_fallback)
            self._route(record, decision, note=f"no valid postcode after {attempts} attempts")
            return self._connect(state, record,
                                 first=(self._say("too_many_attempts", state.language),))
        return self._ask_postcode(state.but(attempts=attempts),
                                  (self._say(problem, state.language),))

    def _postcode_route(self, keys: str) -> tuple[RouteDecision | None, str]:
        """The route by a keyed postcode; or None and the prompt that says what was wrong."""
        try:
            postcode = parse_postcode(keys)
        except PostcodeError:
            return None, "no_input" if not keys.strip("#*") else "postcode_invalid"
        decision = resolve(self.session, RouteRequest(postcode=postcode), self.clock(),
                           national_fallback=self.national_fallback)
        if decision.reason != "postcode":
            return None, "postcode_unknown"
        return decision, ""

    def _ask_postcode(self, state: CallState, before: tuple[Say, ...]) -> Turn:
        prompt = self._say("ask_postcode", state.language)
        gather = Gather((*before, prompt), max_digits=POSTCODE_DIGITS, timeout=8,
                        finish_on_key="#")
        return Turn((gather,), state)

    def _announce(self, state: CallState, record: CallRecord) -> tuple[Say, ...]:
        action = self.session.get(Action, record.action_id) if record.action_id else None
        if action is None:
            return (self._say("connecting", state.language),)
        title = action.title_en if state.language == "en" and action.title_en else action.title_nl
        return (self._say("action_known", state.language, title=title.rstrip(".")),)

    # --- voice message -----------------------------------------------------------------

    def _menu(self, state: CallState, delivery: Delivery, *, intro: bool) -> Turn:
        if self.message_text is None:
            raise FlowError("the message flow needs the message text")
        prompts = [self._say("outbound_intro", state.language)] if intro else []
        prompts += [Say(self.message_text(delivery), state.language),
                    self._say("outbound_menu", state.language)]
        return Turn((Gather(tuple(prompts), max_digits=1, timeout=6),), state)

    def _on_menu(self, state: CallState, record: CallRecord, event: Digits) -> Turn:
        key = event.value[:1]
        delivery = self.session.get(Delivery, state.delivery) if state.delivery else None
        if key == "1" and delivery is not None:
            action = self.session.get(Action, delivery.action_id)
            assert action is not None
            self._route(record, route_to(self.session, action.meldkamer.code, "action",
                                         f"pressed 1 in the voice message of action {action.id}",
                                         action_id=action.id))
            return self._connect(state, record, first=(self._say("connecting", state.language),))
        if key == "2" and delivery is not None and state.attempts + 1 < MESSAGE_REPEATS:
            return self._menu(state.but(attempts=state.attempts + 1), delivery, intro=False)
        record.outcome = "listened"
        return Turn((self._say("outbound_goodbye", state.language), Hangup()), state)

    # --- putting through ---------------------------------------------------------------

    def _connect(self, state: CallState, record: CallRecord, *, first: tuple[Say, ...]) -> Turn:
        meldkamer = self.session.get(Meldkamer, record.meldkamer_id)
        assert meldkamer is not None and meldkamer.phone and meldkamer.sip_uri
        record.outcome = "routing"
        if self.metrics is not None and state.flow == FREE and not state.tried:
            reason = (record.routing_reason or "").split(":", 1)[0]
            self.metrics.inbound_call(record.transport, reason, meldkamer.code)
        dial = Dial(meldkamer=meldkamer.code, phone=meldkamer.phone, sip_uri=meldkamer.sip_uri,
                    timeout=self.dial_timeout, whisper=self._whisper_text(record),
                    caller_id=record.caller)
        state = state.but(stage="dial", tried=(*state.tried, meldkamer.code))
        return Turn((*first, dial), state)

    def _on_dial(self, state: CallState, record: CallRecord, event: DialResult) -> Turn:
        if event.status not in DIAL_STATUSES:
            raise FlowError(f"unknown dial status {event.status!r}")
        if event.status in {"completed", "answered"}:
            record.outcome = "connected"
            record.connected_at = record.connected_at or self.clock()
            return Turn((Hangup(),), state)
        if event.status == "canceled":
            record.outcome = "caller_hung_up"
            return Turn((Hangup(),), state)
        nxt = self._next_meldkamer(state, record, event.status)
        if nxt is None:
            record.outcome = "unanswered"
            return Turn((self._say("all_busy", state.language), Hangup()), state)
        self._route(record, nxt)
        return self._connect(state, record,
                             first=(self._say("fallback_connecting", state.language),))

    def _next_meldkamer(self, state: CallState, record: CallRecord,
                        status: str) -> RouteDecision | None:
        """The fallback of the last meldkamer tried, then the national fallback, never twice."""
        if len(state.tried) >= MELDKAMERS_PER_CALL:
            return None
        last = state.tried[-1]
        detail = f"{last} {status}"
        fallback = fallback_for(self.session, last, tried=state.tried)
        if fallback is not None:
            return route_to(self.session, fallback.meldkamer_code, "fallback", detail,
                            action_id=record.action_id)
        if self.national_fallback in state.tried:
            return None
        return route_to(self.session, self.national_fallback, "fallback", detail,
                        action_id=record.action_id)

    # --- helpers -----------------------------------------------------------------------

    def _existing(self, transport: str, call_id: str | None,
                  direction: CallDirection) -> CallRecord | None:
        if call_id is None:
            return None
        return self.session.scalar(select(CallRecord).where(
            CallRecord.provider_call_id == call_id, CallRecord.transport == transport,
            CallRecord.direction == direction))

    def _add_once(self, record: CallRecord) -> CallRecord:
        """RECORD stored; or, when the same call was stored meanwhile (a replay racing the
        first request), that one: one record per call, the database's unique key decides."""
        try:
            with self.session.begin_nested():
                self.session.add(record)
        except IntegrityError:
            found = self._existing(record.transport, record.provider_call_id,
                                   CallDirection(record.direction))
            if found is None:
                raise
            return found
        return record

    def _route(self, record: CallRecord, decision: RouteDecision, note: str = "") -> None:
        meldkamer_id = self.session.scalar(
            select(Meldkamer.id).where(Meldkamer.code == decision.meldkamer_code))
        record.meldkamer_id = meldkamer_id
        if decision.action_id is not None:
            record.action_id = decision.action_id
        if decision.participant_id is not None and record.participant_id is None:
            record.participant_id = decision.participant_id
        detail = "; ".join(part for part in (decision.detail, note) if part)
        record.routing_reason = f"{decision.reason}: {detail}"[:255]

    def _note(self, record: CallRecord, note: str) -> None:
        record.routing_reason = f"{record.routing_reason or ''}; {note}"[:255]

    def _whisper_text(self, record: CallRecord) -> Say:
        language = self.whisper_language
        reason = (record.routing_reason or "").split(":", 1)[0]
        words = REASONS[language].get(reason, reason)
        caller = _spoken_number(record.caller, language)
        if record.action_id is None:
            return self._say("whisper_no_action", language, caller=caller, reason=words,
                             private=True)
        action = self.session.get(Action, record.action_id)
        title = action.title_nl if action is not None else str(record.action_id)
        return self._say("whisper", language, action=title.rstrip("."), caller=caller,
                         reason=words, private=True)

    def _say(self, key: str, language: str, private: bool = False, **values: str) -> Say:
        return Say(self.catalogue.text(key, language, **values), language, private)

    def _language_of(self, participant_id: int | None) -> str:
        if participant_id is None:
            return "nl"
        language = self.session.scalar(
            select(Participant.language).where(Participant.id == participant_id))
        return Language(language).value if language else "nl"

    def _record(self, state: CallState) -> CallRecord:
        record = self.session.get(CallRecord, state.record)
        if record is None:
            raise FlowError(f"call record {state.record} does not exist")
        return record


def call_ended(session: Session, now: datetime, *, record_id: int | None = None,
               call_id: str | None = None, outcome: str | None = None) -> bool:
    """The call is over (hang-up or the provider's final status): close its record once."""
    if record_id is not None:
        record = session.get(CallRecord, record_id)
    else:
        record = session.scalar(select(CallRecord).where(CallRecord.provider_call_id == call_id)
                                .order_by(CallRecord.id.desc()).limit(1))
    if record is None or record.ended_at is not None:
        return False
    record.ended_at = now
    if record.outcome in (None, "listening", "routing"):
        record.outcome = outcome or ("abandoned" if record.outcome == "routing" else "ended")
    return True


def _spoken_number(number: str | None, language: str) -> str:
    """A number read digit by digit; a withheld one named as such."""
    if not number:
        return "onbekend" if language == "nl" else "unknown"
    return " ".join(number.lstrip("+"))


def steps_text(steps: tuple[Step, ...]) -> list[str]:
    """A readable transcript of steps, for logs and golden tests."""
    lines: list[str] = []
    for step in steps:
        if isinstance(step, Say):
            lines.append(f"say[{step.language}]: {step.text}")
        elif isinstance(step, Gather):
            lines.extend(f"say[{p.language}]: {p.text}" for p in step.prompts)
            lines.append(f"gather: {step.max_digits} digit(s), {step.timeout} s"
                         + (f", ends on {step.finish_on_key}" if step.finish_on_key else "")
                         + (f", may start with {' or '.join(step.lead_keys)}"
                            if step.lead_keys else ""))
        elif isinstance(step, Dial):
            lines.append(f"dial {step.meldkamer}: {step.phone} / {step.sip_uri}, "
                         f"{step.timeout} s")
            lines.append(f"  whisper[{step.whisper.language}]: {step.whisper.text}")
        else:
            lines.append("hangup")
    return lines
