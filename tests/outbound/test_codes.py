import logging
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
import redis
from rq import Queue
from rq.registry import FailedJobRegistry, ScheduledJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.models import Channel, Language
from core.participants import MAX_ATTEMPTS, CodeToSend
from core.settings import Settings
from fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilioServer
from outbound.codes import (
    PER_CLIENT_PER_HOUR,
    CodeRequests,
    code_text,
    enqueue_code,
    seal,
    unseal,
)
from outbound.providers.console import ConsoleProvider
from outbound.providers.twilio_rest import TwilioRestProvider
from outbound.queues import CODE_JOB, CODE_QUEUE
from outbound.runtime import Runtime
from outbound.worker import BatchWorker

SECRET = "test-secret-key"  # the settings fixture's SECRET_KEY: web and worker share it
SENT = CodeToSend("+31612345678", "482913", Language.NL)


def _runtime(settings: Settings, engine: Engine, sessions: sessionmaker[Session],
             connection: redis.Redis, provider, rate: float = 0.0) -> Runtime:
    return Runtime(replace(settings, sms_rate=rate), engine, sessions, connection,
                   providers={Channel.SMS: provider})


@pytest.fixture
def twilio(settings: Settings, engine: Engine, sessions: sessionmaker[Session],
           redis_client: redis.Redis, fake_twilio: FakeTwilioServer) -> Iterator[Runtime]:
    def provider() -> TwilioRestProvider:
        return TwilioRestProvider(ACCOUNT_SID, AUTH_TOKEN, "+31690000999",
                                  base_url=fake_twilio.url)

    runtime = _runtime(settings, engine, sessions, redis_client, provider)
    yield runtime
    runtime.close()


def _drain(runtime: Runtime) -> None:
    connection = runtime.redis
    queue = Queue(CODE_QUEUE, connection=connection, serializer=JSONSerializer)
    BatchWorker([queue], connection=connection, serializer=JSONSerializer,
                runtime=runtime).work(burst=True)


def _everything_in(connection: redis.Redis) -> bytes:
    """Every key and value in Redis, as one blob to search."""
    blob = b""
    for key in connection.scan_iter():
        blob += key
        kind = connection.type(key)
        if kind == b"string":
            blob += connection.get(key) or b""
        elif kind == b"hash":
            blob += b"".join(k + v for k, v in connection.hgetall(key).items())
        elif kind == b"list":
            blob += b"".join(connection.lrange(key, 0, -1))
        elif kind == b"zset":
            blob += b"".join(connection.zrange(key, 0, -1))
        elif kind == b"set":
            blob += b"".join(connection.smembers(key))
    return blob


def test_a_sealed_code_opens_with_the_same_secret_only_and_not_after_it_expired() -> None:
    token = seal(SECRET, SENT)
    assert SENT.code not in token and "612345678" not in token
    assert unseal(SECRET, token) == SENT
    assert unseal("another-secret", token) is None
    assert unseal(SECRET, token, at=time.time() + 9 * 60) == SENT
    assert unseal(SECRET, token, at=time.time() + 11 * 60) is None


def test_the_text_carries_the_code_and_a_line_for_the_browser_to_fill_it_in() -> None:
    assert code_text("482913", Language.EN, "https://burgernet.example.org") == (
        "Your Burgernet code is 482913. It is valid for 10 minutes; do not share it."
        "\n\n@burgernet.example.org #482913")
    assert code_text("482913", Language.NL).startswith("Uw Burgernet-code is 482913.")


def test_the_code_goes_out_through_the_provider_and_redis_never_holds_it_in_clear(
        twilio: Runtime, redis_client: redis.Redis,
        fake_twilio: FakeTwilioServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    enqueue_code(redis_client, SECRET, SENT)
    stored = _everything_in(redis_client)
    assert b"482913" not in stored and b"612345678" not in stored
    _drain(twilio)
    [record] = fake_twilio.fake.records
    assert record.to == "+31612345678" and "482913" in record.body
    assert record.body.startswith("Uw Burgernet-code is 482913")
    assert b"482913" not in _everything_in(redis_client)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "482913" not in logged and "612345678" not in logged


def test_a_job_that_waited_past_the_code_s_lifetime_sends_nothing(
        twilio: Runtime, redis_client: redis.Redis,
        fake_twilio: FakeTwilioServer) -> None:
    queue = Queue(CODE_QUEUE, connection=redis_client, serializer=JSONSerializer)
    stale = seal(SECRET, SENT, at=time.time() - timedelta(minutes=11).total_seconds())
    job = queue.enqueue(CODE_JOB, stale)
    _drain(twilio)
    assert job.return_value() == {"sent": 0, "expired": 1}
    assert fake_twilio.fake.records == []


def test_codes_keep_to_the_sms_sender_s_shared_rate(
        settings: Settings, engine: Engine, sessions: sessionmaker[Session],
        redis_client: redis.Redis, fake_twilio: FakeTwilioServer) -> None:
    def provider() -> TwilioRestProvider:
        return TwilioRestProvider(ACCOUNT_SID, AUTH_TOKEN, "+31690000999",
                                  base_url=fake_twilio.url)

    runtime = _runtime(settings, engine, sessions, redis_client, provider, rate=4.0)
    try:
        for number in ("+31612345671", "+31612345672", "+31612345673", "+31612345674",
                       "+31612345675"):
            enqueue_code(redis_client, SECRET, replace(SENT, phone=number))
        _drain(runtime)
    finally:
        runtime.close()
    times = [record.at for record in fake_twilio.fake.records]
    assert len(times) == 5
    # five sends at 4/s span 1 s when admitted; the first request also opens the connection,
    # so it may arrive a little late
    assert times[-1] - times[0] >= 0.85, times


def test_a_refused_number_fails_once_and_a_provider_outage_is_retried(
        twilio: Runtime, redis_client: redis.Redis,
        fake_twilio: FakeTwilioServer) -> None:
    queue = Queue(CODE_QUEUE, connection=redis_client, serializer=JSONSerializer)
    refused = enqueue_code(redis_client, SECRET, replace(SENT, phone="+0"))
    _drain(twilio)
    assert queue.fetch_job(refused).return_value() == {"sent": 0, "failed": 1}
    fake_twilio.fake.behaviour.error_rate = 1.0
    retried = enqueue_code(redis_client, SECRET, SENT)
    _drain(twilio)
    assert retried in ScheduledJobRegistry(queue=queue).get_job_ids()
    assert retried not in FailedJobRegistry(queue=queue).get_job_ids()
    assert fake_twilio.fake.records == []


def test_the_console_provider_records_the_code_as_the_demo_s_phone(
        settings: Settings, engine: Engine, sessions: sessionmaker[Session],
        redis_client: redis.Redis, tmp_path) -> None:
    outbox = tmp_path / "console.jsonl"
    console = ConsoleProvider(outbox)
    runtime = _runtime(settings, engine, sessions, redis_client, lambda: console)
    try:
        enqueue_code(redis_client, SECRET, SENT)
        _drain(runtime)
    finally:
        runtime.close()
    assert re.search(r"Burgernet-code is (\d{6})", outbox.read_text())[1] == "482913"


def test_code_requests_are_limited_per_number_and_per_client(
        redis_client: redis.Redis) -> None:
    limits = CodeRequests(redis_client, SECRET)
    assert limits.admit("+31612345678", "192.0.2.1") is None
    assert limits.admit("+31612345678", "192.0.2.1") == "wait"
    for _ in range(4):
        redis_client.delete(limits._key("recent", "+31612345678"))
        assert limits.admit("+31612345678", "192.0.2.2") is None
    redis_client.delete(limits._key("recent", "+31612345678"))
    assert limits.admit("+31612345678", "192.0.2.3") == "today"
    for n in range(PER_CLIENT_PER_HOUR - 1):
        assert limits.admit(f"+3161234500{n}", "192.0.2.1") is None
    assert limits.admit("+31611111111", "192.0.2.1") == "client"
    assert limits.admit("+31611111111", "192.0.2.9") is None
    stored = _everything_in(redis_client)
    assert b"612345678" not in stored and b"192.0.2" not in stored


#: 2026-11-23 12:00:00 UTC: the requests below fall in that clock hour, whatever the time.
HOUR_START = 1795435200.0


def test_an_ipv6_client_is_limited_by_its_64_not_by_each_address(
        redis_client: redis.Redis) -> None:
    limits = CodeRequests(redis_client, SECRET)
    for n in range(PER_CLIENT_PER_HOUR):
        assert limits.admit(f"+3161234500{n}", f"2001:db8:7:1::{n + 1:x}",
                            at=HOUR_START) is None
    assert limits.admit("+31611111111", "2001:db8:7:1:ffff:1:2:3", at=HOUR_START) == "client"
    assert limits.admit("+31611111111", "2001:db8:7:2::1", at=HOUR_START) is None


def test_the_hour_s_budget_holds_for_all_numbers_and_clients_and_alarms_once(
        redis_client: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    limits = CodeRequests(redis_client, SECRET, budget=3)
    for n in range(3):
        assert limits.admit(f"+3161234500{n}", f"198.51.100.{n}", at=HOUR_START + n) is None
    with caplog.at_level(logging.WARNING, logger="burgernet.codes"):
        answers = [limits.admit(f"+3161234501{n}", f"203.0.113.{n}", at=HOUR_START + 60 + n)
                   for n in range(4)]
    assert answers == ["budget-first", "budget", "budget", "budget"]
    [alarm] = caplog.records
    assert alarm.levelno == logging.ERROR and "budget of 3 verification codes" in alarm.message
    assert "13:00 UTC" in alarm.message
    # a refusal counted nothing: the same number and client go through in the next hour
    next_hour = HOUR_START + 3600
    assert limits.admit("+31612345010", "203.0.113.0", at=next_hour) is None
    assert limits.admit("+31612345011", "203.0.113.1", at=next_hour) is None


def test_wrong_guesses_count_down_until_a_new_code_is_issued(
        redis_client: redis.Redis) -> None:
    limits = CodeRequests(redis_client, SECRET)
    assert limits.left("+31612345678") == MAX_ATTEMPTS
    assert [limits.failed("+31612345678") for _ in range(MAX_ATTEMPTS + 1)] == \
        [4, 3, 2, 1, 0, 0]
    assert limits.left("+31687654321") == MAX_ATTEMPTS
    limits.issued("+31612345678")
    assert limits.left("+31612345678") == MAX_ATTEMPTS
