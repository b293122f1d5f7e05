"""What a call does, free of any transport: say, gather, dial, hang up.

A flow answers each event with a `Turn`: the steps to carry out now and the state to come back
with. A turn ends with at most one step that waits (`Gather` or `Dial`); its outcome is the next
event. Twilio carries the state in the URL of its next webhook, the SIP runner in memory, and
both feed the same flows, so a call behaves the same over either.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


class FlowError(ValueError):
    """A state or event the flows cannot accept, e.g. a tampered or truncated state."""


@dataclass(frozen=True)
class Say:
    """Speak TEXT in LANGUAGE ("nl" or "en"): a rendered prompt, or TTS of an action's text.

    A PRIVATE text names a person (the whisper reads the caller's number): it is spoken and
    forgotten, never rendered into the prompt cache, whose files are public at /sounds/ under
    a name anyone who guesses the text can compute."""

    text: str
    language: str
    private: bool = False


@dataclass(frozen=True)
class Gather:
    """Play PROMPTS and collect up to MAX_DIGITS keys; an empty result means no input.

    The first key stops the prompts (keys typed ahead during them count). TIMEOUT is how long
    to wait after the prompts and after each key; FINISH_ON_KEY ends the input and is not part
    of it. One of LEAD_KEYS may come first without counting towards MAX_DIGITS: the greeting's
    "*" before a postcode typed ahead. A transport that can look at each key (SIP) ends on the
    last digit; one that cannot (Twilio) collects up to MAX_DIGITS + 1 keys, ended by
    FINISH_ON_KEY or the timeout, and the flow reads them.
    """

    prompts: tuple[Say, ...]
    max_digits: int
    timeout: int
    finish_on_key: str | None = None
    lead_keys: str = ""

    @property
    def max_keys(self) -> int:
        """The most keys this gather can return, a lead key included."""
        return self.max_digits + (1 if self.lead_keys else 0)


@dataclass(frozen=True)
class Dial:
    """Put the caller through to a meldkamer; WHISPER is what the centralist hears first."""

    meldkamer: str
    phone: str
    sip_uri: str
    timeout: int
    whisper: Say
    caller_id: str | None = None


@dataclass(frozen=True)
class Hangup:
    """End the call."""


Step = Say | Gather | Dial | Hangup


@dataclass(frozen=True)
class Digits:
    """The keys a caller pressed for a `Gather`; "" when nothing came before the timeout."""

    value: str


@dataclass(frozen=True)
class DialResult:
    """How a `Dial` ended: completed, answered, busy, no-answer, failed or canceled."""

    status: str


Event = Digits | DialResult

DIAL_STATUSES = frozenset({"completed", "answered", "busy", "no-answer", "failed", "canceled"})


@dataclass(frozen=True)
class CallState:
    """Everything a flow needs between two events; small enough for a URL query string."""

    flow: str
    record: int
    stage: str
    language: str = "nl"
    attempts: int = 0
    tried: tuple[str, ...] = field(default_factory=tuple)
    delivery: int | None = None

    def encode(self) -> dict[str, str]:
        """The state as query parameters (Twilio signs the URL, so they come back unchanged)."""
        values = {"flow": self.flow, "record": str(self.record), "stage": self.stage,
                  "lang": self.language, "attempts": str(self.attempts),
                  "tried": ",".join(self.tried)}
        if self.delivery is not None:
            values["delivery"] = str(self.delivery)
        return values

    @classmethod
    def decode(cls, params: Any) -> CallState:
        """Read a state back from query parameters; anything malformed raises `FlowError`."""
        try:
            tried = tuple(code for code in str(params.get("tried", "")).split(",") if code)
            delivery = params.get("delivery")
            state = cls(flow=str(params["flow"]), record=int(params["record"]),
                        stage=str(params["stage"]), language=str(params.get("lang", "nl")),
                        attempts=int(params.get("attempts", 0)), tried=tried,
                        delivery=int(delivery) if delivery not in (None, "") else None)
        except (KeyError, TypeError, ValueError) as exc:
            raise FlowError(f"malformed call state: {exc}") from None
        if state.language not in {"nl", "en"} or not 0 <= state.attempts < 100:
            raise FlowError("malformed call state: language or attempts out of range")
        return state

    def but(self, **changes: Any) -> CallState:
        return replace(self, **changes)


@dataclass(frozen=True)
class Turn:
    """The steps to carry out now, and the state the next event comes back with."""

    steps: tuple[Step, ...]
    state: CallState

    @property
    def waits_for(self) -> Gather | Dial | None:
        last = self.steps[-1] if self.steps else None
        return last if isinstance(last, Gather | Dial) else None

    @property
    def ends(self) -> bool:
        return bool(self.steps) and isinstance(self.steps[-1], Hangup)

