"""Jobs carry the request id they were queued under (`outbound.queues.job_meta`), and a real
worker's lines for them, and for the retries they queue in turn, name it."""

from __future__ import annotations

from datetime import timedelta

import redis
from rq import Queue
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy.orm import Session

from core.logs import log_context
from outbound.fanout import start_action
from outbound.queues import enqueue, enqueue_code, queue_names
from tests.logs import json_log
from tests.outbound.conftest import NOW

RID = "req-5c1d-77aa"


def _jobs(connection: redis.Redis) -> list:
    queues = [Queue(name, connection=connection, serializer=JSONSerializer)
              for name in queue_names()]
    waiting = [job for queue in queues for job in queue.get_jobs()]
    held = [Queue.fetch_job(queue, job_id) for queue in queues
            for job_id in ScheduledJobRegistry(queue=queue).get_job_ids()]
    return waiting + held


def test_a_job_queued_outside_any_request_carries_no_request_id(
        db: Session, sessions, population, make_action, redis_client) -> None:
    result = start_action(sessions, make_action().id, now=NOW)
    db.commit()
    enqueue(redis_client, result.batches)
    assert {str(job.meta) for job in _jobs(redis_client)} == {"{}"}


def test_a_code_job_carries_the_request_id_of_the_sign_up(redis_client) -> None:
    with log_context(request_id=RID):
        job_id = enqueue_code(redis_client, "sealed", timedelta(minutes=10))
    [job] = _jobs(redis_client)
    assert job.id == job_id and job.meta == {"request_id": RID}


def test_retries_are_queued_under_the_request_that_queued_the_batch(
        db: Session, sessions, population, make_action, runtime, work, fake_twilio,
        steady_backoff, redis_client) -> None:
    fake_twilio.fake.behaviour.error_rate = 1.0  # every SMS and call is retried later
    action = make_action()
    result = start_action(sessions, action.id, now=NOW)
    db.commit()
    with log_context(request_id=RID):
        enqueue(redis_client, result.batches)
    with json_log() as output:
        work()
    retries = _jobs(redis_client)
    assert retries and {job.meta["request_id"] for job in retries} == {RID}
    worked = [line for line in output.lines() if "job_id" in line]
    assert {line["job_id"].split("-")[0] for line in worked} == {"deliveries"}
    assert {line["request_id"] for line in worked} == {RID}
    assert "request_id" not in output.lines()[-1]  # the worker's own last line: no job
