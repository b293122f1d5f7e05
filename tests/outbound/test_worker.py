import time

import redis
from click.testing import CliRunner
from rq import Queue
from rq.serializers import JSONSerializer

from core.cli import main
from core.settings import Settings
from outbound.queues import queue_names
from outbound.worker import COMMAND_POLL, BatchWorker


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


def test_a_worker_stops_within_its_command_poll_after_the_channel_went_quiet(
        redis_client: redis.Redis) -> None:
    """The race that made a burst worker take a minute to quit: its command channel is
    unsubscribed and the reader has seen it (and waits for a new subscription) before the
    reader is stopped. Stopping then waits for that wait, which must be short."""
    worker = BatchWorker([Queue("sms-urgent", connection=redis_client)],
                         connection=redis_client)
    worker.subscribe()
    worker.pubsub.unsubscribe()
    deadline = time.monotonic() + 5
    while worker.pubsub.subscribed and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # the reader is now waiting for a subscription
    started = time.monotonic()
    worker.pubsub_thread.stop()
    worker.pubsub_thread.join(timeout=COMMAND_POLL + 5)
    assert not worker.pubsub_thread.is_alive()
    assert time.monotonic() - started < COMMAND_POLL + 5
