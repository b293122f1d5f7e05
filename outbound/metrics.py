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
from collections.abc import Iterator
from datetime import datetime

import redis
from prometheus_client import ProcessCollector
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from core.metrics import MetricsServer, ScrapeAccess, check_single_process, serve
from core.models import Action, ActionStatus, DeliveryStatus
from outbound.codes import CodeRequests
from outbound.runtime import Runtime
from outbound.status import outbox_backlog, queue_states, workers

log = logging.getLogger("burgernet.metrics")


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
        now = self.runtime.clock()
        yield from queue_state(connection, now)
        yield _gauge("burgernet_workers", "Workers that reported within the last minute",
                     live_workers(connection, now))
        yield _gauge("burgernet_voice_trunk_calls", "Calls holding a line on the voice trunk",
                     self.runtime.call_slots.busy())
        settings = self.runtime.settings
        codes = CodeRequests(connection, settings.secret_key, budget=settings.code_sms_per_hour)
        yield _gauge("burgernet_verification_sms_hour_used", "Verification codes by SMS "
                     "admitted in this clock hour", codes.spent())
        yield _gauge("burgernet_verification_sms_hour_budget", "Verification codes by SMS "
                     "allowed per clock hour (CODE_SMS_PER_HOUR)", codes.budget)

    def _database(self) -> Iterator[Metric]:
        with self.runtime.sessions() as session:
            actions = session.scalar(select(func.count()).select_from(Action).where(
                Action.status == ActionStatus.ACTIVE))
            backlog = outbox_backlog(session, self.runtime.clock())
        yield _gauge("burgernet_active_actions", "Actions that are active", actions or 0)
        family = GaugeMetricFamily("burgernet_outbox_backlog", "Deliveries of active actions "
                                   "still to send (queued) or being sent (sending)",
                                   labels=["status"])
        family.add_metric([DeliveryStatus.QUEUED.value],
                          sum(entry.due + entry.held for entry in backlog))
        family.add_metric([DeliveryStatus.SENDING.value], sum(entry.sending for entry in backlog))
        yield family


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def queue_state(connection: redis.Redis, now: datetime) -> Iterator[Metric]:
    """Jobs waiting on each queue, the age of the oldest (how long it has waited since it was
    due) and the jobs held by the scheduler until their time (a retry's backoff, quiet
    hours): `burgernet status` reads the same (`outbound.status.queue_states`)."""
    jobs = GaugeMetricFamily("burgernet_queue_jobs", "Jobs waiting on the queue",
                             labels=["queue"])
    age = GaugeMetricFamily("burgernet_queue_oldest_job_age_seconds", "How long the oldest "
                            "job on the queue has waited since it was due", labels=["queue"])
    held = GaugeMetricFamily("burgernet_queue_scheduled_jobs", "Jobs the scheduler holds "
                             "until their time", labels=["queue"])
    for state in queue_states(connection, now):
        jobs.add_metric([state.name], state.waiting)
        held.add_metric([state.name], state.scheduled)
        age.add_metric([state.name], state.oldest_seconds or 0.0)
    yield from (jobs, age, held)


def live_workers(connection: redis.Redis, now: datetime) -> int:
    """Workers that reported within `outbound.status.WORKER_SILENCE`, as /readyz counts them."""
    return sum(1 for worker in workers(connection, now) if worker.alive)


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
