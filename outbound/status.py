"""The state of a running system, as an operator (`burgernet status`) and a load balancer
(`/readyz`) ask for it: can the database and Redis be reached, which workers are alive (RQ's
worker registry and heartbeats), how deep and how old each queue is, what the active actions
still have to send, how fast each channel sends now, and whether the SIP nodes are registered.
Everything here reads; nothing is changed, cleaned up or retried.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import redis
from rq import SimpleWorker
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import Engine, false, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core.models import Action, ActionStatus, Channel, Delivery, DeliveryStatus, UTCDateTime
from core.schema import current_revision, head_revision
from ivr.registration import Registration, registrations
from outbound.queues import queue, queue_names
from outbound.runtime import Runtime

#: A worker that has not reported for this long counts as gone (it beats every 15 s).
WORKER_SILENCE = timedelta(seconds=60)
#: An urgent job waiting longer than this is a problem (as the alert rule says).
URGENT_WAIT = timedelta(seconds=30)


def database_state(engine: Engine) -> str:
    """ok; unreachable; or the schema the database has when it is not this code's."""
    try:
        revision = current_revision(engine)
    except SQLAlchemyError:
        return "unreachable"
    head = head_revision()
    return "ok" if revision == head else f"schema {revision or 'empty'}, this code needs {head}"


def redis_state(connection: redis.Redis | None) -> str:
    """ok, unreachable or not configured (REDIS_URL unset)."""
    if connection is None:
        return "not configured"
    try:
        connection.ping()
    except redis.RedisError:
        return "unreachable"
    return "ok"


@dataclass(frozen=True)
class WorkerState:
    """One worker in RQ's registry: its state, its current job, its last heartbeat."""

    name: str
    state: str
    job_id: str | None
    queues: tuple[str, ...]
    last_heartbeat: datetime | None
    alive: bool


def workers(connection: redis.Redis, now: datetime) -> list[WorkerState]:
    """Every worker RQ knows of, by name; alive: it reported within WORKER_SILENCE."""
    found = []
    for worker in SimpleWorker.all(connection=connection):
        beat, state = worker.last_heartbeat, worker.get_state()
        found.append(WorkerState(
            name=worker.name, state=str(getattr(state, "value", state)),
            job_id=worker.get_current_job_id(), queues=tuple(worker.queue_names()),
            last_heartbeat=beat, alive=beat is not None and now - beat <= WORKER_SILENCE))
    return sorted(found, key=lambda w: w.name)


@dataclass(frozen=True)
class QueueState:
    """One queue: jobs waiting, the oldest one's wait, and RQ's registries beside it."""

    name: str
    waiting: int
    oldest_seconds: float | None
    scheduled: int
    running: int
    failed: int

    @property
    def empty(self) -> bool:
        return not (self.waiting or self.scheduled or self.running or self.failed)


def queue_states(connection: redis.Redis, now: datetime) -> list[QueueState]:
    """Every outbound queue in the order workers drain them."""
    states = []
    for name in queue_names():
        target = queue(connection, name)
        oldest = next((job.enqueued_at for job in target.get_jobs(0, 1) if job.enqueued_at),
                      None)
        states.append(QueueState(
            name=name, waiting=target.count,
            oldest_seconds=None if oldest is None else max(0.0, (now - oldest).total_seconds()),
            # counted as they are: RQ's counting would first clean up (and move) jobs
            scheduled=ScheduledJobRegistry(queue=target).get_job_count(cleanup=False),
            running=StartedJobRegistry(queue=target).get_job_count(cleanup=False),
            failed=FailedJobRegistry(queue=target).get_job_count(cleanup=False)))
    return states


@dataclass
class Backlog:
    """What an active action still has to send: due now, held (quiet hours, a retry's
    backoff) and being sent; and how long the longest-waiting due message has waited."""

    action_id: int
    kind: str
    urgency: str
    due: int = 0
    held: int = 0
    sending: int = 0
    oldest_due_seconds: float | None = None


def outbox_backlog(session: Session, now: datetime) -> list[Backlog]:
    """The outbox of every active action with something left to send, by action."""
    held = func.coalesce(Delivery.next_attempt_at > now, false())
    since = func.min(func.coalesce(Delivery.next_attempt_at, Delivery.created_at),
                     type_=UTCDateTime())
    rows = session.execute(
        select(Action.id, Action.kind, Action.urgency, Delivery.status, held, func.count(),
               since)
        .join(Action, Action.id == Delivery.action_id)
        .where(Action.status == ActionStatus.ACTIVE,
               Delivery.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.SENDING]))
        .group_by(Action.id, Action.kind, Action.urgency, Delivery.status, held)).all()
    found: dict[int, Backlog] = {}
    for action_id, kind, urgency, status, is_held, count, waiting_since in rows:
        entry = found.setdefault(action_id, Backlog(action_id, kind.value, urgency.value))
        if status == DeliveryStatus.SENDING:
            entry.sending += count
        elif is_held:
            entry.held += count
        else:
            entry.due += count
            waited = max(0.0, (now - waiting_since).total_seconds())
            entry.oldest_due_seconds = max(entry.oldest_due_seconds or 0.0, waited)
    return [found[key] for key in sorted(found)]


@dataclass(frozen=True)
class ChannelRate:
    """A channel's sender now: its limit, its sends in the last second and how far ahead its
    slots are reserved (the queue in front of the rate limit), from the state in Redis."""

    channel: str
    sender: str
    limit: float
    last_second: int | None
    booked_seconds: float


def send_rates(runtime: Runtime, now: datetime) -> list[ChannelRate]:
    """Every channel's sender; an unlimited one keeps no state to read (None, 0)."""
    rates = []
    for channel in Channel:
        sender, limit = runtime.sender_key(channel), runtime.rate(channel)
        if limit <= 0:
            rates.append(ChannelRate(channel.value, sender, limit, None, 0.0))
            continue
        booked = runtime.throttle.booked_until(sender)
        rates.append(ChannelRate(
            channel.value, sender, limit, runtime.send_window.recent(sender),
            max(0.0, booked - now.timestamp()) if booked is not None else 0.0))
    return rates


@dataclass
class SystemStatus:
    """All of the above at one moment; None where it could not be read; PROBLEMS says what
    is wrong, in words for the operator (none: all is well)."""

    at: datetime
    database: str
    redis: str
    workers: list[WorkerState] | None = None
    queues: list[QueueState] | None = None
    backlog: list[Backlog] | None = None
    rates: list[ChannelRate] | None = None
    sip: list[Registration] | None = None
    problems: list[str] = field(default_factory=list)


def system_status(runtime: Runtime) -> SystemStatus:
    """Read everything an operator needs to see whether alerts go out."""
    now = runtime.clock()
    status = SystemStatus(now, database_state(runtime.engine), redis_state(runtime.redis))
    if status.database == "ok":
        try:
            with runtime.sessions() as session:
                status.backlog = outbox_backlog(session, now)
        except SQLAlchemyError:  # lost since the first look
            status.database = "unreachable"
    if status.redis == "ok" and runtime.redis is not None:
        connection = runtime.redis
        try:
            status.workers = workers(connection, now)
            status.queues = queue_states(connection, now)
            status.rates = send_rates(runtime, now)
            status.sip = registrations(connection)
        except redis.RedisError:
            status.redis = "unreachable"
            status.workers = status.queues = status.rates = status.sip = None
    status.problems = problems(status)
    return status


def problems(status: SystemStatus) -> list[str]:
    """What is wrong in STATUS, most basic first."""
    found = []
    if status.database != "ok":
        found.append(f"database: {status.database}")
    if status.redis != "ok":
        unset = " (REDIS_URL is unset): nothing is queued or sent"
        found.append(f"Redis: {status.redis}{unset if status.redis == 'not configured' else ''}")
    if status.workers is not None and not any(w.alive for w in status.workers):
        found.append(f"no worker has reported within {WORKER_SILENCE.seconds} s")
    for state in status.queues or []:
        if state.name.endswith("-urgent") and (state.oldest_seconds or 0) > \
                URGENT_WAIT.total_seconds():
            found.append(f"queue {state.name}: its oldest job has waited "
                         f"{state.oldest_seconds:.0f} s")
    for node in status.sip or []:
        if not node.registered:
            found.append(f"SIP node {node.node} is not registered at {node.proxy}")
    return found


def readiness(runtime: Runtime) -> tuple[str | None, dict[str, str]]:
    """Why this web process should not take traffic now (None: it may), and the checks.

    The database and Redis must answer and a worker must have reported within
    WORKER_SILENCE. Without REDIS_URL the web app serves the console and queues nothing (as
    it always could): readiness then asks the database alone."""
    checks = {"database": database_state(runtime.engine), "redis": redis_state(runtime.redis)}
    checks["workers"] = "not checked (no Redis)"
    if checks["redis"] == "ok" and runtime.redis is not None:
        try:
            alive = [w for w in workers(runtime.redis, runtime.clock()) if w.alive]
            checks["workers"] = f"{len(alive)} alive" if alive else "none alive"
        except redis.RedisError:
            checks["redis"] = "unreachable"
    if checks["database"] != "ok":
        return f"database: {checks['database']}", checks
    if checks["redis"] == "unreachable":
        return "Redis: unreachable", checks
    if checks["workers"] == "none alive":
        return f"no worker has reported within {WORKER_SILENCE.seconds} s", checks
    return None, checks
