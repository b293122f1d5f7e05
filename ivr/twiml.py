"""Turns of a flow as TwiML, built with the official `twilio.twiml` package."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from urllib.parse import urlencode

from twilio.twiml.voice_response import Dial as DialVerb
from twilio.twiml.voice_response import Gather as GatherVerb
from twilio.twiml.voice_response import VoiceResponse

from ivr.steps import CallState, Dial, Gather, Hangup, Say, Step, Turn

#: Twilio's <Say> voices per language, used when a rendered prompt is not available.
SAY_LANGUAGE = {"nl": "nl-NL", "en": "en-GB"}


class TwimlUrls:
    """Where Twilio comes back to: the step webhook and the whisper, carrying the state."""

    def __init__(self, base: str, *, step: str, whisper: str) -> None:
        self.base = base.rstrip("/")
        self.step_path = step
        self.whisper_path = whisper

    def step(self, state: CallState) -> str:
        return f"{self.base}{self.step_path}?{urlencode(state.encode())}"

    def whisper(self, state: CallState) -> str:
        return f"{self.base}{self.whisper_path}?{urlencode(state.encode())}"


def render(turn: Turn, urls: TwimlUrls, audio_url: Callable[[Say], str | None]) -> str:
    """TwiML for TURN; a `Say` becomes <Play> of its rendered audio, or <Say> without one."""
    response = VoiceResponse()
    for step in turn.steps:
        _add(response, step, turn.state, urls, audio_url)
    return str(response)


def render_says(says: Sequence[Say], audio_url: Callable[[Say], str | None]) -> str:
    """TwiML that only speaks: the whisper played to the centralist."""
    response = VoiceResponse()
    for say in says:
        _speak(response, say, audio_url)
    return str(response)


def _add(response: VoiceResponse, step: Step, state: CallState, urls: TwimlUrls,
         audio_url: Callable[[Say], str | None]) -> None:
    if isinstance(step, Say):
        _speak(response, step, audio_url)
    elif isinstance(step, Gather):
        options = {"input": "dtmf", "num_digits": step.max_keys, "timeout": step.timeout,
                   "action": urls.step(state), "method": "POST"}
        if step.finish_on_key:
            options["finish_on_key"] = step.finish_on_key
        gather = GatherVerb(**options)
        for prompt in step.prompts:
            _speak(gather, prompt, audio_url)
        response.append(gather)
        # Without a key Twilio falls through to the next verb: come back with no digits.
        response.redirect(urls.step(state), method="POST")
    elif isinstance(step, Dial):
        dial = DialVerb(action=urls.step(state), method="POST", timeout=step.timeout,
                        answer_on_bridge=True)
        dial.number(step.phone, url=urls.whisper(state), method="POST")
        response.append(dial)
    elif isinstance(step, Hangup):
        response.hangup()


def _speak(verb: VoiceResponse | GatherVerb, say: Say,
           audio_url: Callable[[Say], str | None]) -> None:
    """<Play> of the rendered prompt, or <Say>: always for a private text, which gets no
    file (and so no public URL)."""
    url = None if say.private else audio_url(say)
    if url:
        verb.play(url)
    else:
        verb.say(say.text, language=SAY_LANGUAGE.get(say.language, "nl-NL"))
