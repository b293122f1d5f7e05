"""`burgernet worker`: an RQ worker on the outbound queues, handing its Runtime to every job."""

from __future__ import annotations

import logging
import threading
from typing import Any, cast

import click
import redis
from rq import SimpleWorker
from rq.executions import Execution
from rq.job import Job
from rq.queue import Queue
from rq.serializers import JSONSerializer

from core.logs import log_context
from outbound.cli import pass_runtime
from outbound.fanout import resume_outboxes
from outbound.metrics import serve_process
from outbound.purge import purge_unconfirmed
from outbound.queues import RUNTIME_JOBS, enqueue, job_log_ids, queue, queue_names
from outbound.reclaim import reclaim
from outbound.runtime import Runtime

log = logging.getLogger("burgernet.worker")
#: Seconds between looks at the worker's command channel (RQ's shutdown, kill and stop-job).
COMMAND_POLL = 1.0


class RuntimeJob(Job):
    """An RQ job that calls our job functions (`queues.RUNTIME_JOBS`) with the worker's
    Runtime before the ids the job carries: jobs get their clients from the process that
    runs them, never from a module global. Other functions run as RQ runs them."""

    runtime: Runtime | None = None

    def _execute(self) -> Any:  # RQ's one call of the job function (rq.job.Job.perform)
        if self.func_name not in RUNTIME_JOBS:
            return super()._execute()
        if self.runtime is None:
            raise RuntimeError(f"{self.func_name} needs a Runtime: it runs in `burgernet worker`")
        return self.func(self.runtime, *self.args, **self.kwargs)


class BatchWorker(SimpleWorker):
    """RQ's SimpleWorker (one process runs batch after batch) that hands RUNTIME to our jobs,
    and whose command channel is read every COMMAND_POLL seconds instead of RQ's 60.

    Since redis-py 8.2, stopping the channel's thread waits for its current read, and RQ
    reads with a 60 s timeout: a burst worker then took up to a minute to quit after its last
    job, and a stopped worker as long to exit."""

    job_class = RuntimeJob
    #: Seconds between heartbeats, idle or busy: RQ's own come only between jobs and BLPOPs
    #: (minutes apart), and readiness wants one within `outbound.status.WORKER_SILENCE`.
    heartbeat_every = 15.0

    def __init__(self, queues: list[Queue], *args: Any, runtime: Runtime | None = None,
                 **kwargs: Any) -> None:
        super().__init__(queues, *args, **kwargs)
        self.runtime = runtime

    def work(self, *args: Any, **kwargs: Any) -> bool:
        stop = threading.Event()
        threading.Thread(target=self._beat, args=(stop,), daemon=True, name="heartbeat").start()
        try:
            return bool(super().work(*args, **kwargs))
        finally:
            stop.set()

    def _beat(self, stop: threading.Event) -> None:
        while not stop.wait(self.heartbeat_every):
            try:
                self.heartbeat()
            except redis.RedisError:  # RQ's own loop waits for Redis and says so
                pass

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        if isinstance(job, RuntimeJob):
            job.runtime = self.runtime
        with log_context(**job_log_ids(job)):  # the request id the job was queued under
            return super().perform_job(job, queue, execution)

    def subscribe(self) -> None:
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        thread = self.pubsub.run_in_thread(sleep_time=COMMAND_POLL, daemon=True,
                                           exception_handler=self._pubsub_exception_handler)
        # RQ types the attribute from its unannotated `self.pubsub_thread = None`, as None
        cast(Any, self).pubsub_thread = thread


@click.command("worker")
@click.option("--queue", "names", multiple=True,
              help="queue to drain (repeatable); default: every outbound queue by priority")
@click.option("--burst", is_flag=True, help="stop when the queues are empty")
@click.option("--name", default=None, help="worker name (default: host and pid)")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              help="serve /metrics on this port (default: METRICS_PORT; 0: none)")
@pass_runtime
def worker_command(runtime: Runtime, names: tuple[str, ...], burst: bool,
                   name: str | None, metrics_port: int | None) -> None:
    """Process outbound jobs from Redis until stopped."""
    connection = runtime.connect_redis("a worker")
    runtime.ready_engine()
    server = serve_process(runtime, metrics_port)
    _reclaim_once(runtime)
    stop = threading.Event()
    if not burst:
        threading.Thread(target=_reclaim_forever, args=(runtime, stop), daemon=True,
                         name="reclaim").start()
    # One process keeps its database pool and throttle warm; a batch is the unit of work,
    # so forking per job (~20 ms) buys isolation we do not need.
    worker = BatchWorker([queue(connection, n) for n in names or queue_names()],
                         connection=connection, name=name, serializer=JSONSerializer,
                         runtime=runtime)
    try:
        worker.work(burst=burst, with_scheduler=True)
    finally:
        stop.set()
        if server is not None:
            server.close()


RECLAIM_EVERY = 30.0


def _reclaim_once(runtime: Runtime) -> None:
    connection = runtime.redis_for("reclaiming deliveries")
    try:
        for resumed in resume_outboxes(runtime.writer, runtime.clock(),
                                       lambda batches: enqueue(connection, batches)):
            log.warning("completed the interrupted outbox of action %d (%d deliveries queued)",
                        resumed.action_id, resumed.deliveries)
        done = reclaim(runtime, runtime.clock())
    except Exception:  # a failed round is retried at the next one
        log.exception("reclaiming stale deliveries failed")
        return
    if done.recorded or done.requeued or done.orphans:
        log.warning("reclaimed: %d in-flight deliveries had been sent, %d queued again; "
                    "%d orphaned ones enqueued", done.recorded, done.requeued, done.orphans)


def _purge_once(runtime: Runtime) -> None:
    try:
        count = purge_unconfirmed(runtime.writer, runtime.settings.var_dir, runtime.clock())
    except Exception:  # a failed round is retried at the next one
        log.exception("purging unconfirmed sign-ups failed")
        return
    if count:
        log.info("erased %d sign-up(s) never confirmed", count)


def _reclaim_forever(runtime: Runtime, stop: threading.Event) -> None:
    """Deliveries a dead worker left in `sending` come back once their lease has run out;
    sign-ups whose code expired unconfirmed are erased."""
    while not stop.wait(RECLAIM_EVERY):
        _reclaim_once(runtime)
        _purge_once(runtime)
