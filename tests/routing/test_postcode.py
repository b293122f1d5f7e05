import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.postcode import PostcodeError, parse_postcode, postcode_or_reason


@pytest.mark.parametrize("raw", ["3441", "3441#", "3441 AB", "3441ab", " 3441 ab # ", "3441AB#"])
def test_keyed_and_typed_postcodes_give_the_pc4(raw: str) -> None:
    assert parse_postcode(raw) == "3441"


@pytest.mark.parametrize(("raw", "reason"), [
    (None, "no postcode entered"),
    ("", "no postcode entered"),
    ("#", "no postcode entered"),
    ("344#", "has 3 digits, not 4"),
    ("34411", "has 5 digits, not 4"),
    ("0441", "starts with 0"),
    ("3441*", "is not 4 digits"),
    ("34 41", "is not 4 digits"),
    ("Woerden", "is not 4 digits"),
    ("٣٤٤١", "is not 4 digits"),
    ("3" * 100, "characters long"),
])
def test_anything_else_is_refused_with_the_reason(raw: str | None, reason: str) -> None:
    with pytest.raises(PostcodeError, match=reason):
        parse_postcode(raw)
    assert postcode_or_reason(raw)[0] is None


@given(st.text(max_size=80))
def test_arbitrary_input_never_raises_and_gives_a_valid_pc4_or_a_reason(raw: str) -> None:
    pc4, reason = postcode_or_reason(raw)
    assert (pc4 is None) != (reason is None)
    if pc4 is not None:
        assert re.fullmatch(r"[1-9][0-9]{3}", pc4) and pc4 in raw


@given(st.from_regex(r"[1-9][0-9]{3}( ?[A-Za-z]{2})?#?", fullmatch=True))
def test_every_well_formed_postcode_is_accepted(raw: str) -> None:
    assert parse_postcode(raw) == raw[:4]


@given(st.text(alphabet="0123456789*#", max_size=12))
def test_dtmf_sequences_give_four_digits_or_a_reason(keys: str) -> None:
    pc4, reason = postcode_or_reason(keys)
    expected = re.fullmatch(r"([1-9][0-9]{3})#?", keys)
    assert pc4 == (expected[1] if expected else None)
