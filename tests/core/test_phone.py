import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import PhoneNumberError
from core.phone import can_receive_sms, is_fictional, normalize


@pytest.mark.parametrize(("raw", "expected"), [
    ("06 12345678", "+31612345678"),
    ("+31 20-123 4567", "+31201234567"),
    ("0031612345678", "+31612345678"),
    ("+32 470 12 34 56", "+32470123456"),
    ("+49 1512 3456789", "+4915123456789"),
    ("06-90001234", "+31690001234"),
])
def test_numbers_are_normalised_to_e164(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@pytest.mark.parametrize(("raw", "reason"), [
    ("", "empty"),
    ("hello", "not a phone number"),
    ("06 1234", "not a valid phone number"),
    ("+1 202 555 0143", "only Dutch, Belgian and German"),
    ("+44 20 7946 0018", "only Dutch, Belgian and German"),
    ("612345678", "with \\+ and the country code"),
    ("31612345678", "with \\+ and the country code"),
    ("690001234", "with \\+ and the country code"),
])
def test_bad_numbers_are_refused_with_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(PhoneNumberError, match=reason):
        normalize(raw)


def test_fictional_numbers_can_be_refused() -> None:
    assert is_fictional(normalize("0690001234"))
    with pytest.raises(PhoneNumberError, match="fictional"):
        normalize("0690001234", allow_fictional=False)


@given(st.text(max_size=30))
def test_any_text_gives_e164_or_a_phone_number_error(raw: str) -> None:
    try:
        result = normalize(raw)
    except PhoneNumberError:
        return
    assert result.startswith("+") and result[1:].isdigit()
    assert is_fictional(result) or phonenumbers.is_valid_number(phonenumbers.parse(result))


@given(st.integers(min_value=10_000_000, max_value=59_999_999))
def test_dutch_mobile_numbers_round_trip(digits: int) -> None:
    e164 = f"+316{digits:08d}"
    assert normalize(e164) == e164
    assert normalize(f"06{digits:08d}") == e164


@pytest.mark.parametrize(("e164", "sms"), [
    ("+31612345678", True), ("+31687654321", True),  # Dutch mobile (06-1..5, 06-8)
    ("+31690001234", True),  # the fictional demo block (the console provider takes it)
    ("+32470123456", True), ("+4915123456789", True), ("+491621234567", True),  # BE, DE
    ("+31201234567", False), ("+3225123456", False), ("+493012345678", False),  # fixed lines
    ("+31661234567", False),  # 066: pagers
    ("+3197012345678", False),  # 097: machine-to-machine
    ("+31900123456", False), ("+31800123456", False),  # premium rate, free
    ("+31852123456", False), ("+31842123456", False),  # VoIP, personal numbers
    ("+447911123456", False), ("+12025550143", False),  # mobile, but another country
    ("+3161234", False), ("not a number", False)])
def test_only_mobile_numbers_of_the_accepted_countries_can_receive_sms(e164: str,
                                                                        sms: bool) -> None:
    assert can_receive_sms(e164) is sms
