"""TwiML rendered from turns, parsed back and checked verb by verb."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlsplit

from ivr.steps import CallState, Dial, Gather, Hangup, Say, Turn
from ivr.twiml import TwimlUrls, render, render_says

URLS = TwimlUrls("https://bn.example/", step="/voice/step", whisper="/voice/whisper")
STATE = CallState(flow="free", record=5, stage="postcode", language="nl", attempts=1)


def state_in(url: str) -> CallState:
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}".startswith("https://bn.example/voice/")
    return CallState.decode({k: v[0] for k, v in parse_qs(parts.query,
                                                          keep_blank_values=True).items()})


def test_a_gather_carries_its_prompts_and_comes_back_also_without_input():
    turn = Turn((Say("Hallo.", "nl"),
                 Gather((Say("Toets uw postcode.", "nl"),), max_digits=4, timeout=8,
                        finish_on_key="#")), STATE)
    root = ET.fromstring(render(turn, URLS, lambda say: None))
    say, gather, redirect = list(root)
    assert say.tag == "Say" and say.text == "Hallo." and say.get("language") == "nl-NL"
    assert gather.tag == "Gather"
    assert (gather.get("numDigits"), gather.get("timeout"), gather.get("finishOnKey"),
            gather.get("input")) == ("4", "8", "#", "dtmf")
    assert state_in(gather.get("action")) == STATE
    assert [child.text for child in gather] == ["Toets uw postcode."]
    assert redirect.tag == "Redirect" and state_in(redirect.text) == STATE


def test_a_gather_that_may_start_with_a_lead_key_takes_one_key_more():
    turn = Turn((Gather((Say("Welkom.", "nl"),), max_digits=4, timeout=3, finish_on_key="#",
                        lead_keys="*"),), STATE)
    gather = ET.fromstring(render(turn, URLS, lambda say: None)).find("Gather")
    assert (gather.get("numDigits"), gather.get("finishOnKey"), gather.get("timeout")) == (
        "5", "#", "3")


def test_rendered_prompts_are_played_and_english_is_said_in_english():
    turn = Turn((Say("Welcome.", "en"), Say("Welkom.", "nl")), STATE)
    root = ET.fromstring(render(turn, URLS, lambda say: "https://bn.example/sounds/k.wav"
                                if say.language == "nl" else None))
    assert [(c.tag, c.text, c.get("language")) for c in root] == [
        ("Say", "Welcome.", "en-GB"), ("Play", "https://bn.example/sounds/k.wav", None)]


def test_a_dial_rings_the_meldkamer_with_a_whisper_and_reports_back():
    state = STATE.but(stage="dial", tried=("MN",))
    turn = Turn((Dial(meldkamer="MN", phone="+31690000103",
                      sip_uri="sip:+31690000103@127.0.0.1", timeout=20,
                      whisper=Say("Burgernet-oproep.", "nl")),), state)
    (dial,) = list(ET.fromstring(render(turn, URLS, lambda say: None)))
    assert dial.tag == "Dial" and dial.get("timeout") == "20"
    assert state_in(dial.get("action")) == state
    (number,) = list(dial)
    assert number.tag == "Number" and number.text == "+31690000103"
    assert urlsplit(number.get("url")).path == "/voice/whisper"
    assert state_in(number.get("url")) == state


def test_hangup_and_whisper_documents():
    root = ET.fromstring(render(Turn((Say("Dag.", "nl"), Hangup()), STATE), URLS,
                                lambda say: None))
    assert [c.tag for c in root] == ["Say", "Hangup"]
    whisper = ET.fromstring(render_says([Say("Actie 3.", "nl")], lambda say: None))
    assert [(c.tag, c.text) for c in whisper] == [("Say", "Actie 3.")]


def test_a_private_say_is_never_played_from_a_file():
    """A text naming a person gets no rendered file, so no public URL: Twilio reads it."""
    asked: list[Say] = []

    def audio_url(say: Say) -> str:
        asked.append(say)
        return "https://bn.example/sounds/" + "a" * 64 + ".wav"

    root = ET.fromstring(render_says([Say("Burgernetgesprek.", "nl"),
                                      Say("Beller 3 1 6 1 2.", "nl", private=True)], audio_url))
    assert [child.tag for child in root] == ["Play", "Say"]
    assert root[1].text == "Beller 3 1 6 1 2." and root[1].get("language") == "nl-NL"
    assert [say.private for say in asked] == [False]
