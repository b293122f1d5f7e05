"""What no single process knows, read from Redis and the database when Prometheus scrapes the
web app (`web.metrics`): queue depth and the age of each queue's oldest job, the workers that
are alive, the calls holding a line on the trunk, the outbox backlog of active actions and the
verification codes of this hour against their budget. And the metrics port of a worker or a
SIP node (`serve_process`).

Every global value comes from one place (the web app's /metrics): each web host reports the
same numbers, so the rules take their `max`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC

import redis
from prometheus_client import ProcessCollector
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from rq.utils import utcparse
from rq.worker_registration import REDIS_WORKER_KEYS
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from core.metrics import MetricsServer, ScrapeAccess, check_single_process, serve
from core.models import Action, ActionStatus, Delivery, DeliveryStatus
from outbound.codes import CodeRequests
from outbound.queues import queue, queue_names
from outbound.runtime import Runtime

log = logging.getLogger("burgernet.metrics")

BACKLOG = (DeliveryStatus.QUEUED, DeliveryStatus.SENDING)


class StateCollector(Collector):
    """The shared state of the system, read at each scrape; a source that cannot be read
    says so in `burgernet_scrape_source_up` instead of failing the scrape."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("burgernet_scrape_source_up", "1 when the shared state could "
                               "be read from this source at this scrape", labels=["source"])
        for source, read in (("redis", self._redis), ("database", self._database)):
            try:
                families = list(read())
            except (redis.RedisError, SQLAlchemyError, OSError) as exc:
                log.warning("metrics: %s could not be read: %s", source, type(exc).__name__)
                families = None
            if families is not None:
                yield from families
            up.add_metric([source], 0.0 if families is None else 1.0)
        yield up

    def _redis(self) -> Iterator[Metric]:
        connection = self.runtime.redis
        if connection is None:
            raise redis.ConnectionError("REDIS_URL is not set")
        yield from queue_state(connection, time.time())
        yield _gauge("burgernet_workers", "Workers alive in Redis (their heartbeat is fresh)",
                     live_workers(connection))
        yield _gauge("burgernet_voice_trunk_calls", "Calls holding a line on the voice trunk",
                     self.runtime.call_slots.busy())
        settings = self.runtime.settings
        codes = CodeRequests(connection, settings.secret_key, budget=settings.code_sms_per_hour)
        yield _gauge("burgernet_verification_sms_hour_used", "Verification codes by SMS "
                     "admitted in this clock hour", codes.spent())
        yield _gauge("burgernet_verification_sms_hour_budget", "Verification codes by SMS "
                     "allowed per clock hour (CODE_SMS_PER_HOUR)", codes.budget)

    def _database(self) -> Iterator[Metric]:
        active = select(Action.id).where(Action.status == ActionStatus.ACTIVE)
        with self.runtime.sessions() as session:
            actions = session.scalar(select(func.count()).select_from(active.subquery()))
            # (action_id, status) is indexed: this counts index entries of open deliveries
            rows = {status: count for status, count in session.execute(
                select(Delivery.status, func.count())
                .where(Delivery.action_id.in_(active), Delivery.status.in_(BACKLOG))
                .group_by(Delivery.status))}
        yield _gauge("burgernet_active_actions", "Actions that are active", actions or 0)
        backlog = GaugeMetricFamily("burgernet_outbox_backlog", "Deliveries of active actions "
                                    "still to send (queued) or being sent (sending)",
                                    labels=["status"])
        for status in BACKLOG:
            backlog.add_metric([status.value], rows.get(status, 0))
        yield backlog


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def queue_state(connection: redis.Redis, now: float) -> Iterator[Metric]:
    """Jobs waiting on each queue, the age of the oldest (how long it has waited since it was
    due) and the jobs held by the scheduler until their time (a retry's backoff, quiet
    hours)."""
    jobs = GaugeMetricFamily("burgernet_queue_jobs", "Jobs waiting on the queue",
                             labels=["queue"])
    age = GaugeMetricFamily("burgernet_queue_oldest_job_age_seconds", "How long the oldest "
                            "job on the queue has waited since it was due", labels=["queue"])
    held = GaugeMetricFamily("burgernet_queue_scheduled_jobs", "Jobs the scheduler holds "
                             "until their time", labels=["queue"])
    names = queue_names()
    queues = [queue(connection, name) for name in names]
    with connection.pipeline(transaction=False) as pipe:
        for q in queues:
            pipe.llen(q.key)
            pipe.lindex(q.key, 0)
            pipe.zcard(q.scheduled_job_registry.key)
        answers = pipe.execute()
    heads = answers[1::3]
    with connection.pipeline(transaction=False) as pipe:
        for q, head in zip(queues, heads, strict=True):
            if head:
                pipe.hget(q.job_class.key_for(head.decode()), "enqueued_at")
            else:
                pipe.ping()  # keeps the answers in step with the queues
        enqueued = pipe.execute()
    for index, name in enumerate(names):
        jobs.add_metric([name], answers[3 * index])
        held.add_metric([name], answers[3 * index + 2])
        age.add_metric([name], _age(enqueued[index], now) if heads[index] else 0.0)
    yield from (jobs, age, held)


def _age(enqueued_at: object, now: float) -> float:
    if not isinstance(enqueued_at, bytes):
        return 0.0  # the job's record is gone: a worker takes it off and drops it
    moment = utcparse(enqueued_at.decode())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, now - moment.timestamp())


def live_workers(connection: redis.Redis) -> int:
    """RQ workers whose key still exists: it expires when a worker stops beating (killed)."""
    keys = list(connection.smembers(REDIS_WORKER_KEYS))
    if not keys:
        return 0
    with connection.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.exists(key)
        return sum(1 for alive in pipe.execute() if alive)


def serve_process(runtime: Runtime, port: int | None = None) -> MetricsServer | None:
    """This worker's or SIP node's own /metrics on METRICS_HOST:PORT (METRICS_PORT unless
    given; none when 0), with its CPU and memory; ConfigError when the port is taken."""
    settings = runtime.settings
    port = settings.metrics_port if port is None else port
    if not port:
        return None
    check_single_process()
    process = ProcessCollector(registry=None)
    server = serve(lambda: (runtime.metrics.registry, process), settings.metrics_host, port,
                   ScrapeAccess.of(settings))
    log.info("metrics on http://%s:%d/metrics", settings.metrics_host, server.port)
    return server
