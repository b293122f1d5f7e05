"""`burgernet worker`: an RQ worker on the outbound queues."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

import click
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from core.cli import Context, pass_context
from outbound.fanout import resume_outboxes
from outbound.jobs import reclaim
from outbound.purge import purge_unconfirmed
from outbound.queues import enqueue, queue, queue_names
from outbound.runtime import OutboundRuntime, build_runtime, connect_redis, install

log = logging.getLogger("burgernet.worker")
#: Seconds between looks at the worker's command channel (RQ's shutdown, kill and stop-job).
COMMAND_POLL = 1.0


class BatchWorker(SimpleWorker):
    """RQ's SimpleWorker (one process runs batch after batch), whose command channel is read
    every COMMAND_POLL seconds instead of RQ's 60.

    Since redis-py 8.2, stopping the channel's thread waits for its current read, and RQ
    reads with a 60 s timeout: a burst worker then took up to a minute to quit after its last
    job, and a stopped worker as long to exit."""

    def subscribe(self) -> None:
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=COMMAND_POLL, daemon=True,
            exception_handler=self._pubsub_exception_handler)


@click.command("worker")
@click.option("--queue", "names", multiple=True,
              help="queue to drain (repeatable); default: every outbound queue by priority")
@click.option("--burst", is_flag=True, help="stop when the queues are empty")
@click.option("--name", default=None, help="worker name (default: host and pid)")
@pass_context
def worker_command(context: Context, names: tuple[str, ...], burst: bool,
                   name: str | None) -> None:
    """Process outbound jobs from Redis until stopped."""
    connection = connect_redis(context.settings, "a worker")
    context.ready_engine()
    runtime = build_runtime(context.settings)
    install(runtime)
    _reclaim_once(runtime)
    stop = threading.Event()
    if not burst:
        threading.Thread(target=_reclaim_forever, args=(runtime, stop), daemon=True,
                         name="reclaim").start()
    # One process keeps its database pool and throttle warm; a batch is the unit of work,
    # so forking per job (~20 ms) buys isolation we do not need.
    worker = BatchWorker([queue(connection, n) for n in names or queue_names()],
                         connection=connection, name=name, serializer=JSONSerializer)
    try:
        worker.work(burst=burst, with_scheduler=True)
    finally:
        stop.set()
        runtime.close()


RECLAIM_EVERY = 30.0


def _reclaim_once(runtime: OutboundRuntime) -> None:
    try:
        for resumed in resume_outboxes(runtime.sessions, datetime.now(UTC),
                                       lambda batches: enqueue(runtime.redis, batches)):
            log.warning("completed the interrupted outbox of action %d (%d deliveries queued)",
                        resumed.action_id, resumed.deliveries)
        done = reclaim(runtime, datetime.now(UTC))
    except Exception:  # a failed round is retried at the next one
        log.exception("reclaiming stale deliveries failed")
        return
    if done.recorded or done.requeued or done.orphans:
        log.warning("reclaimed: %d in-flight deliveries had been sent, %d queued again; "
                    "%d orphaned ones enqueued", done.recorded, done.requeued, done.orphans)


def _purge_once(runtime: OutboundRuntime) -> None:
    try:
        count = purge_unconfirmed(runtime.sessions, runtime.settings.var_dir, datetime.now(UTC))
    except Exception:  # a failed round is retried at the next one
        log.exception("purging unconfirmed sign-ups failed")
        return
    if count:
        log.info("erased %d sign-up(s) never confirmed", count)


def _reclaim_forever(runtime: OutboundRuntime, stop: threading.Event) -> None:
    """Deliveries a dead worker left in `sending` come back once their lease has run out;
    sign-ups whose code expired unconfirmed are erased."""
    while not stop.wait(RECLAIM_EVERY):
        _reclaim_once(runtime)
        _purge_once(runtime)
