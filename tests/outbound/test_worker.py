import time
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy.exc import OperationalError

from core.cli import main
from core.redis_server import EmbeddedRedis, free_port
from core.settings import Settings
from outbound.queues import queue_names
from outbound.reclaim import RedisWatch
from outbound.runtime import build_runtime
from outbound.worker import BatchWorker, RuntimeJob


def test_queues_are_drained_most_urgent_first() -> None:
    names = queue_names()
    assert names[:5] == ["outbox", "voice-urgent", "sms-urgent", "email-urgent", "push-urgent"]
    assert names[-1] == "push-normal"


def test_the_worker_runs_a_queued_job_from_redis(settings: Settings,
                                                 redis_client: redis.Redis) -> None:
    queue = Queue("sms-urgent", connection=redis_client, serializer=JSONSerializer)
    job = queue.enqueue("operator.add", 2, 3)
    result = CliRunner().invoke(main, ["worker", "--burst"], env={
        "REDIS_URL": settings.redis_url, "DATABASE_URL": settings.database_url,
        "BURGERNET_HOME": str(settings.home)}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    job.refresh()
    assert job.is_finished and job.return_value() == 5


def test_the_worker_needs_redis(settings: Settings) -> None:
    result = CliRunner().invoke(main, ["worker", "--burst"], env={
        "REDIS_URL": "", "DATABASE_URL": settings.database_url})
    assert result.exit_code == 1
    assert "REDIS_URL is not set" in result.output


def test_stopping_a_worker_does_not_wait_for_its_command_listener(
        redis_client: redis.Redis) -> None:
    """RQ's command listener sleeps up to 60 s between checks of its stop flag and is woken
    at teardown by the reply to UNSUBSCRIBE. Here that reply reaches it before the worker
    goes on to stop it, as on a busy machine: it must end all the same, at once."""
    queue = Queue("sms-urgent", connection=redis_client, serializer=JSONSerializer)
    worker = BatchWorker([queue], connection=redis_client, serializer=JSONSerializer)
    worker.subscribe()
    pubsub = worker.pubsub
    send = pubsub.unsubscribe

    def reply_handled_first(*args: str) -> None:
        send(*args)
        deadline = time.monotonic() + 5
        while pubsub.subscribed and time.monotonic() < deadline:
            time.sleep(0.01)

    pubsub.unsubscribe = reply_handled_first
    started = time.monotonic()
    worker.unsubscribe()
    assert time.monotonic() - started < 5
    assert not worker.pubsub_thread.is_alive()


def test_a_job_that_cannot_reach_the_database_has_the_queues_refilled(
        tmp_path: Path, redis_server: EmbeddedRedis, redis_client: redis.Redis) -> None:
    """Its deliveries may still be queued with no job left for them (RQ retries it only
    30 s after a second failure): the watch owes a refill from the outbox."""
    port = free_port()  # nothing listens there: the database is down
    runtime = build_runtime(Settings.from_env({
        "BURGERNET_HOME": str(tmp_path), "REDIS_URL": redis_server.url,
        "DATABASE_URL": f"postgresql+psycopg://burgernet@127.0.0.1:{port}/burgernet"}))
    job = RuntimeJob.create("outbound.jobs.send_batch", args=([1, 2],),
                            connection=redis_client, serializer=JSONSerializer)
    job.runtime, job.watch = runtime, RedisWatch()
    try:
        with pytest.raises(OperationalError):
            job.perform()
    finally:
        runtime.close()
    assert job.watch.owed


def test_a_job_that_fails_otherwise_owes_no_refill(redis_client: redis.Redis) -> None:
    job = RuntimeJob.create("operator.truediv", args=(1, 0), connection=redis_client,
                            serializer=JSONSerializer)
    job.watch = RedisWatch()
    with pytest.raises(ZeroDivisionError):
        job.perform()
    assert not job.watch.owed
