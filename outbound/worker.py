"""`burgernet worker`: an RQ worker on the outbound queues, handing its Runtime to every job.

It outlives Redis: an RQ worker that lost its connection is followed by a new one once Redis
answers again (with backoff), and a thread sweeps every SWEEP_EVERY seconds for what needs
taking back (`outbound.reclaim`): expired leases, due look-ups, and the queues of a Redis
that restarted or lost its data. It outlives the database as well: the engine tests a pooled
connection before handing it out (`core.db.make_engine`), a sweep that fails is tried again
at the next one, and a job that lost the database has the queues refilled from the outbox
once it answers again, rather than waiting for RQ's next retry."""

from __future__ import annotations

import functools
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import click
import redis
from rq import SimpleWorker
from rq.exceptions import StopRequested
from rq.executions import Execution
from rq.job import Job
from rq.queue import Queue
from rq.serializers import JSONSerializer
from sqlalchemy.exc import InterfaceError, OperationalError

from core.logs import log_context
from outbound.cli import pass_runtime
from outbound.fanout import resume_outboxes
from outbound.metrics import serve_process
from outbound.purge import purge_unconfirmed
from outbound.queues import RUNTIME_JOBS, enqueue, job_log_ids, queue, queue_names
from outbound.reclaim import RedisWatch, reclaim, requeue_orphans
from outbound.runtime import Runtime

log = logging.getLogger("burgernet.worker")
#: Seconds between looks at the worker's command channel (RQ's shutdown, kill and stop-job).
COMMAND_POLL = 1.0
#: The database's errors that mean it could not be reached (a restart, a network fault), as
#: opposed to a statement it refused.
DATABASE_GONE = (OperationalError, InterfaceError)


class RuntimeJob(Job):
    """An RQ job that calls our job functions (`queues.RUNTIME_JOBS`) with the worker's
    Runtime before the ids the job carries: jobs get their clients from the process that
    runs them, never from a module global. Other functions run as RQ runs them."""

    runtime: Runtime | None = None
    watch: RedisWatch | None = None

    def _execute(self) -> Any:  # RQ's one call of the job function (rq.job.Job.perform)
        if self.func_name not in RUNTIME_JOBS:
            return super()._execute()
        if self.runtime is None:
            raise RuntimeError(f"{self.func_name} needs a Runtime: it runs in `burgernet worker`")
        try:
            return self.func(self.runtime, *self.args, **self.kwargs)
        except (redis.RedisError, *DATABASE_GONE):
            # What the job committed may not be on a queue; one that lost the database may
            # not have claimed its deliveries, or not have queued their retries.
            if self.watch is not None:
                self.watch.trouble()
            raise


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
                 watch: RedisWatch | None = None, **kwargs: Any) -> None:
        super().__init__(queues, *args, **kwargs)
        self.runtime = runtime
        self.watch = watch
        #: The queues were found empty (a burst worker's end).
        self.drained = False
        #: A signal asked it to stop.
        self.stopping = False

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
            job.runtime, job.watch = self.runtime, self.watch
        with log_context(**job_log_ids(job)):  # the request id the job was queued under
            return super().perform_job(job, queue, execution)

    def dequeue_job_and_maintain_ttl(self, timeout: int | None,
                                     max_idle_time: int | None = None) -> tuple[Job, Queue] | None:
        result = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        self.drained = result is None
        return result

    def request_stop(self, signum: Any, frame: Any) -> None:
        self.stopping = True
        super().request_stop(signum, frame)

    @property
    def finished(self) -> bool:
        """It ended as asked (a signal, or a burst that emptied the queues), not on an error."""
        return self.stopping or self.drained

    def abandon(self) -> None:
        """After an error that ended `work` (Redis gone): stop what teardown may not have."""
        thread = self.pubsub_thread
        if thread is not None and thread.is_alive():
            thread.stop()
        try:
            self.connection.delete(self.key)  # a new worker of the same name may register
        except redis.RedisError:
            pass

    def free_scheduler(self) -> None:
        """Once Redis answers again after `work` ended on an error: stop this worker's RQ
        scheduler, if its process outlived the error, and free its locks. Kept by a Redis
        that restarted with its data, or replicated to the primary that took over, they would
        keep the next worker's scheduler off until they expire and RQ looks again (at its
        maintenance, every ten minutes): delayed retries would wait that long."""
        if self.scheduler is None:
            return
        process = self.scheduler._process
        if process is not None and process.is_alive():
            process.terminate()
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join(5)
        try:
            self.scheduler.release_locks()
        except redis.RedisError:
            pass  # then the locks expire, as they did before

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
    if not burst:  # a burst worker forks no scheduler
        _release_sockets_in_children()
    watch = RedisWatch()
    _reclaim_once(runtime)
    _sweep_once(runtime, watch)
    stop = threading.Event()
    if not burst:
        threading.Thread(target=_sweep_forever, args=(runtime, watch, stop), daemon=True,
                         name="reclaim").start()

    # One process keeps its database pool and throttle warm; a batch is the unit of work,
    # so forking per job (~20 ms) buys isolation we do not need.
    def worker() -> BatchWorker:
        return BatchWorker([queue(connection, n) for n in names or queue_names()],
                           connection=connection, name=name, serializer=JSONSerializer,
                           runtime=runtime, watch=watch)

    try:
        _work(worker, connection, watch, burst)
    finally:
        stop.set()
        if server is not None:
            server.close()


@functools.cache
def _release_sockets_in_children() -> None:
    os.register_at_fork(after_in_child=_in_child)


def _in_child() -> None:
    release_inherited_sockets()
    parent = os.getppid()
    threading.Thread(target=_exit_with, args=(parent,), daemon=True, name="parent").start()


def _exit_with(parent: int) -> None:
    """End this child (RQ's scheduler) when the worker that forked it is gone: a worker
    started in its place forks its own."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def release_inherited_sockets() -> None:
    """In a child the worker forks (RQ's scheduler): let go of every socket the worker holds.

    The scheduler opens its own connection. A copy of the worker's would keep that
    connection open after the worker is killed alone (the OOM killer, `kill PID`): Redis
    would go on counting the dead worker's blocking pop as a reader and hand it the next job,
    which nobody reads. Each socket's descriptor is pointed at /dev/null rather than closed,
    so its number is not reused under the Python objects the child inherited."""
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        for name in os.listdir("/proc/self/fd"):
            descriptor = int(name)
            if descriptor <= 2 or descriptor == devnull:
                continue
            try:
                if stat.S_ISSOCK(os.fstat(descriptor).st_mode):
                    os.dup2(devnull, descriptor)
            except OSError:  # the listing's own descriptor, closed meanwhile
                continue
    finally:
        os.close(devnull)


#: Seconds before the first attempt to reach Redis again; each next one waits twice as long,
#: up to RECONNECT_MAX.
RECONNECT_FIRST = 0.5
RECONNECT_MAX = 15.0


def _work(worker: Callable[[], BatchWorker], connection: redis.Redis, watch: RedisWatch,
          burst: bool) -> None:
    """RQ workers, one after the other, until one ends as asked: one that lost Redis is
    followed by the next once Redis answers again."""
    while True:
        current = worker()
        try:
            current.work(burst=burst, with_scheduler=True)
        except Exception:  # its teardown, when Redis is gone
            log.warning("the worker's queue loop ended on an error", exc_info=True)
        if current.finished:
            return
        watch.trouble()
        current.abandon()
        try:
            _until_redis_answers(connection)
        except StopRequested:  # RQ's signal handler, stopped while waiting
            return
        current.free_scheduler()


def _until_redis_answers(connection: redis.Redis) -> None:
    pause = RECONNECT_FIRST
    while True:
        try:
            connection.ping()
        except redis.RedisError as exc:
            log.warning("Redis does not answer (%s); trying again in %.1f s", exc, pause)
            time.sleep(pause)
            pause = min(pause * 2, RECONNECT_MAX)
            continue
        log.warning("Redis answers again: the worker goes on")
        return


#: Seconds between sweeps for expired leases, look-ups due and a Redis that lost its jobs: a
#: dead worker's deliveries go out again within the lease (`outbound.claim.LEASE`) and this.
SWEEP_EVERY = 2.0
#: Seconds between the slower chores: interrupted outboxes, orphaned deliveries, sign-ups.
RECLAIM_EVERY = 30.0


def _sweep_once(runtime: Runtime, watch: RedisWatch) -> None:
    try:
        refilled = watch.check(runtime)
        if refilled is not None:
            log.warning("the queues may have lost jobs (Redis or the database could not be "
                        "reached): %d queued deliveries put back on the queues", refilled)
        done = reclaim(runtime, runtime.clock())
    except Exception as exc:  # a failed round is retried at the next one
        if isinstance(exc, redis.RedisError):
            watch.trouble()
        log.exception("reclaiming deliveries failed")
        return
    if done.recorded or done.requeued or done.pending:
        log.warning("reclaimed: %d deliveries the provider had taken (recorded as sent), %d "
                    "queued again, %d still to be looked up", done.recorded, done.requeued,
                    done.pending)


def _reclaim_once(runtime: Runtime) -> None:
    connection = runtime.redis_for("reclaiming deliveries")
    try:
        for resumed in resume_outboxes(runtime.writer, runtime.clock(),
                                       lambda batches: enqueue(connection, batches)):
            log.warning("completed the interrupted outbox of action %d (%d deliveries queued)",
                        resumed.action_id, resumed.deliveries)
        orphans = requeue_orphans(runtime, runtime.clock())
    except Exception:  # a failed round is retried at the next one
        log.exception("reclaiming stale deliveries failed")
        return
    if orphans:
        log.warning("%d orphaned queued deliveries enqueued again", orphans)


def _purge_once(runtime: Runtime) -> None:
    try:
        count = purge_unconfirmed(runtime.writer, runtime.settings.var_dir, runtime.clock())
    except Exception:  # a failed round is retried at the next one
        log.exception("purging unconfirmed sign-ups failed")
        return
    if count:
        log.info("erased %d sign-up(s) never confirmed", count)


def _sweep_forever(runtime: Runtime, watch: RedisWatch, stop: threading.Event) -> None:
    """Every SWEEP_EVERY seconds, what a dead worker or a Redis that lost its jobs left
    (`_sweep_once`); every RECLAIM_EVERY seconds, the slower chores, and sign-ups whose code
    expired unconfirmed are erased."""
    chores = time.monotonic()
    while not stop.wait(SWEEP_EVERY):
        _sweep_once(runtime, watch)
        if time.monotonic() - chores >= RECLAIM_EVERY:
            chores = time.monotonic()
            _reclaim_once(runtime)
            _purge_once(runtime)
