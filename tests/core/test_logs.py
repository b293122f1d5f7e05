"""LOG_FORMAT=json: one JSON object a line, with the ids of the work it is about, and the same
redaction as the text lines (no number, code, address or personal link in clear)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest

from core.errors import ConfigError
from core.logs import current_ids, log_context
from core.settings import Settings
from tests.logs import json_log

log = logging.getLogger("burgernet.test")


def test_a_json_line_has_time_level_logger_and_message() -> None:
    before = datetime.now(UTC)
    with json_log() as output:
        log.warning("queue %s is %d jobs deep", "sms-urgent", 12)
    [line] = output.lines()
    assert set(line) == {"time", "level", "logger", "message"}
    assert line["level"] == "WARNING" and line["logger"] == "burgernet.test"
    assert line["message"] == "queue sms-urgent is 12 jobs deep"
    assert line["time"].endswith("Z")  # UTC, whatever the machine's zone (tests run in St John's)
    written = datetime.fromisoformat(line["time"])
    assert written.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= written <= datetime.now(UTC) + timedelta(seconds=1)


def test_the_ids_of_the_work_go_on_every_line_logged_inside_it() -> None:
    with json_log() as output:
        with log_context(request_id="req-0001-abcd", action_id=7):
            log.info("starting")
            with log_context(delivery_id=41, call_id="CA" + "f" * 32):
                log.info("calling")
            log.info("started")
        log.info("outside")
    starting, calling, started, outside = output.lines()
    assert (starting["request_id"], starting["action_id"]) == ("req-0001-abcd", 7)
    assert "delivery_id" not in starting and "call_id" not in starting
    assert calling | {"time": None} == {
        "time": None, "level": "INFO", "logger": "burgernet.test", "message": "calling",
        "request_id": "req-0001-abcd", "action_id": 7, "delivery_id": 41,
        "call_id": "CA" + "f" * 32}
    assert "delivery_id" not in started and started["action_id"] == 7
    assert not {"request_id", "action_id"} & set(outside)
    assert current_ids() == {}


def test_an_id_given_with_the_line_wins_over_the_context() -> None:
    with json_log() as output, log_context(delivery_id=1):
        log.info("retry", extra={"delivery_id": 2})
    assert output.lines()[0]["delivery_id"] == 2


def test_tasks_and_threads_keep_their_own_ids() -> None:
    """An asyncio task copies the context it was made in; a thread starts without one."""

    async def send(delivery_id: int) -> None:
        with log_context(delivery_id=delivery_id):
            await asyncio.sleep(0.01)
            log.info("sent")

    async def batch() -> None:
        await asyncio.gather(send(1), send(2))

    with json_log() as output, log_context(request_id="req-0001-abcd"):
        asyncio.run(batch())
        thread = threading.Thread(target=log.info, args=("elsewhere",))
        thread.start()
        thread.join()
    lines = output.lines()
    assert sorted((line["delivery_id"], line["request_id"]) for line in lines[:2]) == \
        [(1, "req-0001-abcd"), (2, "req-0001-abcd")]
    assert "request_id" not in lines[2]


def test_json_lines_are_redacted_field_by_field_and_stay_valid_json() -> None:
    """Numbers, codes, addresses and reaction links are masked as in the text lines; quotes,
    line breaks and a traceback stay inside one parsable line."""
    with json_log() as output:
        with log_context(request_id="req-0001-abcd", call_id="0612345678@pbx.example.org"):
            log.info('sms to %s: "code %s"\nnext line', "+31612345678", "482913")
            try:
                raise ValueError("no reaction for /reactie/MTIz.Zx9 from deelnemer@example.org")
            except ValueError:
                log.exception("failed for 06-12345678 (?phone=0612345678&lang=nl)")
    text = output.text
    assert len(text.splitlines()) == 2
    first, second = output.lines()
    assert first["message"] == 'sms to +31 6 ****5678: "code ******"\nnext line'
    assert first["call_id"] == "0***@pbx.example.org"  # a SIP Call-ID may hold a number
    assert second["message"] == "failed for +31 6 ****5678 (?phone=***&lang=nl)"
    assert "/reactie/***" in second["exception"] and "d***@example.org" in second["exception"]
    assert second["exception"].startswith("Traceback") and "ValueError" in second["exception"]
    for secret in ("612345678", "12345678", "482913", "MTIz.Zx9", "deelnemer@"):
        assert secret not in text, secret


def test_an_id_that_looks_like_a_number_is_masked_too() -> None:
    with json_log() as output, log_context(request_id="0612345678"):
        log.info("x")
    assert json.loads(output.text)["request_id"] == "+31 6 ****5678"


@pytest.mark.parametrize(("value", "expected"), [(None, "text"), ("json", "json"),
                                                 ("JSON", "json"), ("text", "text")])
def test_log_format_is_text_unless_json_is_asked(tmp_path, value, expected) -> None:
    env = {"BURGERNET_HOME": str(tmp_path), "SECRET_KEY": "k"}
    if value is not None:
        env["LOG_FORMAT"] = value
    assert Settings.from_env(env).log_format == expected


def test_an_unknown_log_format_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="LOG_FORMAT='logfmt' is not one of text, json"):
        Settings.from_env({"BURGERNET_HOME": str(tmp_path), "SECRET_KEY": "k",
                           "LOG_FORMAT": "logfmt"})
