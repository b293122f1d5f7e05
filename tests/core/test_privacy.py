"""Masks for logs and the erasure of one number from kept texts (`core.privacy`), and the
logging the `burgernet` command sets up with them."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from core.cli import QUIET_LOGGERS, configure_logging
from core.models import Channel
from core.privacy import (
    NUMBER_REMOVED,
    mask_email,
    mask_phone,
    redact,
    redact_query,
    strip_number,
)
from fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilioServer
from outbound.providers import Message
from outbound.providers.twilio_rest import TwilioRestProvider

E164 = "+31612345678"
#: How people and systems write that one number.
WRITTEN = ["+31612345678", "+31 6 1234 5678", "+31 (0)6 12345678", "0031 6 12345678",
           "0031612345678", "06-12345678", "0612345678", "06 12345678", "06 123 456 78",
           "06-1234 5678", "31612345678"]


@pytest.mark.parametrize("written", WRITTEN)
def test_a_number_is_masked_to_its_country_and_last_four_digits(written: str) -> None:
    assert mask_phone(written) == "+31 6 ****5678"
    masked = redact(f"sms naar {written}, klaar")
    assert masked == "sms naar +31 6 ****5678, klaar"


@pytest.mark.parametrize(("line", "expected"), [
    ("Uw Burgernet-code is 482913. Hij is 10 minuten geldig",
     "Uw Burgernet-code is ******. Hij is 10 minuten geldig"),
    ("Your Burgernet code is 482913.\n\n@burgernet.example #482913",
     "Your Burgernet code is ******.\n\n@burgernet.example #******"),
    ('{"code": "482913"}', '{"code": "******"}'),
    ("GET /reactie/MTIz.Zx9-Q_aB.c1d2?lang=en HTTP/1.1", "GET /reactie/***?lang=en HTTP/1.1"),
    ("Exception on /reactie/MTIz.Zx9-Q_aB.c1d2 [POST]", "Exception on /reactie/*** [POST]"),
    ("https://burgernet.example/reactie/MTIz.Zx9", "https://burgernet.example/reactie/***"),
    ("GET /deelnemen/code?code=482913&lang=en HTTP/1.1",
     "GET /deelnemen/code?code=***&lang=en HTTP/1.1"),
    ("GET /x.json?To=%2B31612345678&PageSize=50", "GET /x.json?To=***&PageSize=***"),
    ("mail to deelnemer@example.org refused", "mail to d***@example.org refused"),
    ("INVITE sip:0612345678@trunk.example SIP/2.0",
     "INVITE sip:+31 6 ****5678@trunk.example SIP/2.0"),
])
def test_codes_links_query_values_and_addresses_are_masked(line: str, expected: str) -> None:
    assert redact(line) == expected
    assert redact(expected) == expected


@pytest.mark.parametrize("line", [
    "GET /reactie/bedankt HTTP/1.1",
    "GET /console/?status=active&page=2&lang=en HTTP/1.1",
    "[23/Nov/2026:12:00:00 +0100] 0.012345 127.0.0.1 delivery 1234567 took 2026-11-23",
    "dialling sip:meldkamer-mn@sip.example failed: 486 Busy Here",
    "would send CONSOLE000000000012 sms",
    "keyed postcode 3511 lies in Utrecht (52.0907, 5.1214)",
])
def test_what_names_no_one_is_left_as_it_is(line: str) -> None:
    assert redact(line) == line


def test_a_bare_query_string_keeps_only_safe_values() -> None:
    assert redact_query("code=482913&lang=en&phone=0612345678") == \
        "code=***&lang=en&phone=***"
    assert mask_email("deelnemer@example.org") == "d***@example.org"


@pytest.mark.parametrize("written", [*WRITTEN, "06.12.34.56.78", "+31-6-12.34.56.78"])
def test_one_number_is_taken_out_of_a_text_however_it_is_written(written: str) -> None:
    text = f"Man rende weg. Bel mij: {written}. Buurman heeft +31687654321."
    assert strip_number(text, E164) == \
        f"Man rende weg. Bel mij: {NUMBER_REMOVED}. Buurman heeft +31687654321."


@pytest.mark.parametrize("other", ["0612345679", "10612345678", "+31612345", "3511"])
def test_other_numbers_stay_in_the_text(other: str) -> None:
    assert strip_number(f"zie {other}", E164) == f"zie {other}"


def test_the_e_mail_address_goes_too_whatever_its_case() -> None:
    assert strip_number("mail Deelnemer@Example.org", E164, "deelnemer@example.org") == \
        "mail ***"


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """The `burgernet` command's logging, into a buffer; put back as it was afterwards."""
    root = logging.getLogger()
    before = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    stream = io.StringIO()
    configure_logging("INFO", stream)
    yield stream
    root.handlers[:], root.level = before[0], before[1]
    for name, level in quiet.items():
        logging.getLogger(name).setLevel(level)


def test_every_logged_line_is_redacted_tracebacks_included(log_output: io.StringIO) -> None:
    log = logging.getLogger("burgernet.test")
    log.info("sms to %s: code %s", "+31612345678", "482913")
    try:
        raise ValueError("no reaction for /reactie/MTIz.Zx9 from deelnemer@example.org")
    except ValueError:
        log.exception("failed for 06-12345678")
    text = log_output.getvalue()
    assert "+31 6 ****5678" in text and "code ******" in text and "/reactie/***" in text
    for secret in ("612345678", "12345678", "482913", "MTIz.Zx9", "deelnemer@"):
        assert secret not in text, secret
    assert "Traceback" in text and "ValueError" in text


def test_library_chatter_is_held_back_below_warning(log_output: io.StringIO) -> None:
    logging.getLogger("twilio.async_http_client").info("Query Params: {'To': '+31612345678'}")
    logging.getLogger("alembic.runtime").info("Running upgrade")
    logging.getLogger("twilio.http_client").warning("HTTP 500 from Twilio")
    assert log_output.getvalue() == "WARNING twilio.http_client: HTTP 500 from Twilio\n"


def test_looking_up_a_sent_message_at_twilio_logs_no_number(log_output: io.StringIO) -> None:
    message = Message(1, Channel.SMS, E164, "Gezocht: man in rode jas", "nl")
    with FakeTwilioServer() as server:
        async def look_up() -> str | None:
            provider = TwilioRestProvider(ACCOUNT_SID, AUTH_TOKEN, "+31690000999",
                                          base_url=server.url)
            try:
                return await provider.find_sent(message, datetime.now(UTC))
            finally:
                await provider.close()

        assert asyncio.run(look_up()) is None
    assert "612345678" not in log_output.getvalue()
