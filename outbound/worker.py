"""`burgernet worker`: an RQ worker on the outbound queues."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

import click
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer

from core.cli import Context, pass_context
from outbound.fanout import resume_outboxes
from outbound.jobs import enqueue, reclaim
from outbound.queues import queue_names
from outbound.runtime import OutboundRuntime, build_runtime, connect_redis, install

log = logging.getLogger("burgernet.worker")


class OutboundWorker(SimpleWorker):
    """RQ's SimpleWorker, whose command listener stops at once when the worker does.

    RQ runs a thread that listens for commands (stop a job, shut down) with a 60-second
    timeout and wakes it at teardown by unsubscribing; redis-py's stop() then waits for the
    thread. When the UNSUBSCRIBE reply reached the thread before its stop flag was cleared (a
    busy machine makes that likely), the thread went on to wait 60 s for a subscription that
    never came: one burst run in four took a minute beside one busy thread. Clearing the flag
    first lets the reply end the thread."""

    def unsubscribe(self) -> None:
        if self.pubsub_thread is not None:
            self.pubsub_thread.stop(timeout=0)
        super().unsubscribe()


@click.command("worker")
@click.option("--queue", "queues", multiple=True,
              help="queue to drain (repeatable); default: every outbound queue by priority")
@click.option("--burst", is_flag=True, help="stop when the queues are empty")
@click.option("--name", default=None, help="worker name (default: host and pid)")
@pass_context
def worker_command(context: Context, queues: tuple[str, ...], burst: bool,
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
    names = list(queues) or queue_names()
    # One process keeps its database pool and throttle warm; a batch is the unit of work,
    # so forking per job (~20 ms) buys isolation we do not need.
    worker = OutboundWorker([Queue(n, connection=connection, serializer=JSONSerializer)
                             for n in names], connection=connection, name=name,
                            serializer=JSONSerializer)
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


def _reclaim_forever(runtime: OutboundRuntime, stop: threading.Event) -> None:
    """Deliveries a dead worker left in `sending` come back once their lease has run out."""
    while not stop.wait(RECLAIM_EVERY):
        _reclaim_once(runtime)
