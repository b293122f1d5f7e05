import time

import redis
from click.testing import CliRunner
from rq import Queue
from rq.serializers import JSONSerializer

from core.cli import main
from core.settings import Settings
from outbound.queues import queue_names
from outbound.worker import BatchWorker


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
