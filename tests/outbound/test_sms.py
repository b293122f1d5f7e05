import pytest
from hypothesis import given
from hypothesis import strategies as st

from outbound.sms import sms_size


@pytest.mark.parametrize(("text", "encoding", "units", "segments"), [
    ("", "GSM-7", 0, 1),
    ("a" * 160, "GSM-7", 160, 1),
    ("a" * 161, "GSM-7", 161, 2),
    ("a" * 306, "GSM-7", 306, 2),
    ("a" * 307, "GSM-7", 307, 3),
    ("€" * 80, "GSM-7", 160, 1),          # extension characters count twice
    ("€" * 81, "GSM-7", 162, 2),
    ("Café é à ü ñ Ø", "GSM-7", 14, 1),     # these are in the GSM alphabet
    ("Łódź", "UCS-2", 4, 1),
    ("ł" + "a" * 69, "UCS-2", 70, 1),
    ("ł" + "a" * 70, "UCS-2", 71, 2),
    ("🚓" * 35, "UCS-2", 70, 1),           # outside the BMP: two UTF-16 units each
])
def test_sizes_follow_gsm_and_ucs2_rules(text, encoding, units, segments) -> None:
    size = sms_size(text)
    assert (size.encoding, size.units, size.segments) == (encoding, units, segments)


@given(st.text(max_size=1000))
def test_every_text_fits_its_segments(text: str) -> None:
    size = sms_size(text)
    single, part = (160, 153) if size.encoding == "GSM-7" else (70, 67)
    assert size.units <= (single if size.segments == 1 else part * size.segments)
    assert size.segments == 1 or size.units > single
