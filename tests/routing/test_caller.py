import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.caller import is_withheld, parse_caller

E164 = re.compile(r"\+[1-9][0-9]{6,14}")


@pytest.mark.parametrize(("raw", "expected"), [
    ("+31612345678", "+31612345678"),
    ("0031612345678", "+31612345678"),
    ("sip:+31612345678@sbc.example.net;user=phone", "+31612345678"),
    ("<sips:%2B31612345678@sbc.example.net>", "+31612345678"),
    ("tel:+31-6-1234-5678", "+31612345678"),
    ("+31690001234", "+31690001234"),
    ("+14155552671", "+14155552671"),
    ("+442079460958", "+442079460958"),
    # RFC 3966: the URI itself says which country's national format it is in
    ("sip:0612345678;phone-context=+31@sbc.example.net;user=phone", "+31612345678"),
    ("tel:0470123456;phone-context=+32", "+32470123456"),
])
def test_caller_ids_become_e164(raw: str, expected: str) -> None:
    assert parse_caller(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("0612345678", "+31612345678"),
    ("06-1234 5678", "+31612345678"),
    ('"Jan" <sip:0612345678@192.0.2.1>;tag=abc', "+31612345678"),
    ("+32470123456", "+32470123456"),
])
def test_a_transport_in_national_format_gives_national_numbers(raw: str, expected: str) -> None:
    assert parse_caller(raw, national="NL") == expected


@pytest.mark.parametrize("raw", ["612345678", "31612345678", "690001234", "31690001234",
                                 "0612345678", "sip:0612345678@192.0.2.1",
                                 "sip:0612345678;phone-context=example.net@192.0.2.1"])
def test_digits_without_a_country_code_are_never_guessed_dutch(raw: str) -> None:
    """Twilio sends From in E.164: anything else is not read as a Dutch number."""
    assert parse_caller(raw) is None


@pytest.mark.parametrize("raw", ["612345678", "31612345678"])
def test_national_format_needs_the_trunk_prefix(raw: str) -> None:
    assert parse_caller(raw, national="NL") is None


#: Every placeholder Twilio documents for a withheld caller ID.
TWILIO_WITHHELD = ["+266696687", "+7378742833", "+8656696", "+2562533", "+86282452253", "+464"]


@pytest.mark.parametrize("raw", TWILIO_WITHHELD + [n.lstrip("+") for n in TWILIO_WITHHELD])
def test_every_documented_withheld_number_is_withheld(raw: str) -> None:
    assert parse_caller(raw) is None and parse_caller(raw, national="NL") is None
    assert is_withheld(raw)


@pytest.mark.parametrize("raw", [
    None, "", "   ", "anonymous", "Anonymous", "Restricted", "UNKNOWN", "private",
    "sip:anonymous@anonymous.invalid", '"Anonymous" <sip:anonymous@anonymous.invalid>',
    "+266696687", "+7378742833",
])
def test_withheld_numbers_are_none(raw: str | None) -> None:
    assert parse_caller(raw) is None
    assert is_withheld(raw) == bool(raw and raw.strip())


@pytest.mark.parametrize("raw", ["12", "abc", "06 123", "+31 6", "sip:alice@example.com",
                                 "+999123456789", "0" * 300])
def test_unreadable_caller_ids_are_none(raw: str) -> None:
    assert parse_caller(raw) is None
    assert not is_withheld(raw)


@given(st.text(max_size=300))
def test_arbitrary_text_never_raises_and_gives_e164_or_none(raw: str) -> None:
    result = parse_caller(raw)
    assert result is None or E164.fullmatch(result)


@given(st.from_regex(r"(\+31|0031|0)6[1-5][0-9]{7}", fullmatch=True),
       st.sampled_from(["{}", "sip:{}@host", "tel:{}", "<sip:{}@h;user=phone>"]))
def test_dutch_mobile_numbers_in_any_form_are_found(number: str, form: str) -> None:
    result = parse_caller(form.format(number), national="NL")
    assert result is not None and result.startswith("+316") and result[-8:] == number[-8:]
