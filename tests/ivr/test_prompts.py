"""The prompt catalogue: complete in both languages, and clear about what it lacks."""

from __future__ import annotations

import string
from pathlib import Path

import pytest

from core.errors import DataError
from ivr.prompts import (
    DEFAULT_CATALOGUE,
    LANGUAGES,
    Catalogue,
    PromptError,
    load_catalogue,
    spell_digits,
)

#: The keys the IVR flows use, with their placeholders: the catalogue's contract with the flows.
CONTRACT = {
    "greeting": set(), "action_known": {"title"}, "ask_postcode": set(),
    "postcode_invalid": set(), "postcode_unknown": set(), "too_many_attempts": set(),
    "connecting": set(), "fallback_connecting": set(), "all_busy": set(),
    "whisper": {"action", "caller", "reason"}, "whisper_no_action": {"caller", "reason"},
    "outbound_intro": set(), "outbound_menu": set(), "outbound_goodbye": set(),
    "no_input": set(), "goodbye": set(), "emergency_note": set(),
}


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


def _names(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_every_prompt_has_both_languages_with_the_same_placeholders() -> None:
    import tomllib

    raw = tomllib.loads(DEFAULT_CATALOGUE.read_text(encoding="utf-8"))
    assert raw
    for key, texts in raw.items():
        assert set(texts) == {"nl", "en"}, key
        assert all(text.strip() for text in texts.values()), key
        assert _names(texts["nl"]) == _names(texts["en"]), key


def test_the_flows_keys_are_there_with_their_placeholders(catalogue: Catalogue) -> None:
    for key, placeholders in CONTRACT.items():
        assert catalogue.placeholders(key) == placeholders, key
    assert len(catalogue) >= len(CONTRACT)


def test_texts_are_filled_in(catalogue: Catalogue) -> None:
    assert catalogue.text("action_known", "nl", title="Vermiste jongen Utrecht") == (
        "U belt over de Burgernetactie Vermiste jongen Utrecht. "
        "U wordt doorverbonden met de meldkamer.")
    assert catalogue.text("connecting", "en") == "You are being put through. One moment please."
    assert "For English, press star." in catalogue.text("greeting", "nl")  # ivr.flows.ENGLISH_KEY
    whisper = catalogue.text("whisper", "en", action="A-17", caller="0 6 1 2", reason="postcode",
                             unused="ignored")
    assert whisper == "Burgernet call about action A-17. Caller 0 6 1 2. Routed by postcode."


def test_values_are_not_formats_themselves(catalogue: Catalogue) -> None:
    assert catalogue.text("action_known", "en", title="{caller} {0}").count("{caller} {0}") == 1


def test_the_language_enum_works_as_a_language(catalogue: Catalogue) -> None:
    from core.models import Language

    assert catalogue.text("goodbye", Language.NL) == catalogue.text("goodbye", "nl")


def test_prompts_that_send_callers_away_remind_them_of_112(catalogue: Catalogue) -> None:
    for key in ("all_busy", "emergency_note"):
        for language in LANGUAGES:
            assert "112" in catalogue.text(key, language), (key, language)


def test_an_unknown_key_is_a_clear_error(catalogue: Catalogue) -> None:
    with pytest.raises(PromptError,
                       match=r"unknown prompt 'greting'; the catalogue has .*greeting"):
        catalogue.text("greting", "nl")


def test_a_missing_language_is_a_clear_error(catalogue: Catalogue) -> None:
    with pytest.raises(PromptError, match=r"prompt 'goodbye' has no text in language 'de'"):
        catalogue.text("goodbye", "de")


def test_a_missing_value_is_a_clear_error(catalogue: Catalogue) -> None:
    with pytest.raises(PromptError, match=r"prompt 'whisper' needs a value for \{caller\}, "
                                          r"\{reason\}"):
        catalogue.text("whisper", "nl", action="A-17")


@pytest.mark.parametrize(("toml", "reason"), [
    ('[a]\nnl = "Hallo {naam}."\nen = "Hello {name}."\n',
     r"prompt 'a': the nl text has placeholders \{naam\} but the en text has \{name\}"),
    ('[a]\nnl = "Hallo."\n', r"prompt 'a' has no en text"),
    ('[a]\nnl = "Hallo."\nen = "Hello."\nde = "Hallo."\n', r"prompt 'a' has unknown language"),
    ('[a]\nnl = "Hallo {0}."\nen = "Hello {0}."\n', r"placeholder \{0\} must be a plain"),
    ('[a]\nnl = "Hallo {x!r}."\nen = "Hello {x!r}."\n', r"placeholder \{x\} must be a plain"),
    ('[a]\nnl = "Hallo {x."\nen = "Hello."\n', r"prompt 'a' \(nl\)"),
    ('a = "b"\n', r"'a' is not a table"),
    ("[a\n", r"not valid TOML"),
])
def test_a_bad_catalogue_names_the_file_and_the_prompt(tmp_path: Path, toml: str,
                                                       reason: str) -> None:
    path = tmp_path / "prompts.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(DataError, match=reason) as caught:
        load_catalogue(path)
    assert str(caught.value).startswith(str(path))


def test_a_missing_catalogue_says_so(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_catalogue(tmp_path / "nope.toml")


@pytest.mark.parametrize(("number", "spoken"), [
    ("0612345678", "0 6 1 2 3 4 5 6 7 8"),
    ("+31 6 1234", "plus 3 1 6 1 2 3 4"),
    ("", ""),
])
def test_phone_numbers_are_spoken_digit_by_digit(number: str, spoken: str) -> None:
    assert spell_digits(number) == spoken
