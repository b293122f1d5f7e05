"""The RQ queues: their names, the batches they carry, and every way work is put on them.

One queue per channel and priority, drained most urgent first, and the outbox queue before
them all. Jobs carry ids (the JSON serializer, a unique job id, an explicit retry); the job
functions themselves are named here by their dotted path, so queueing imports none of them.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from rq import Queue, Retry
from rq.job import Job
from rq.serializers import JSONSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.logs import current_ids
from core.models import (
    Action,
    ActionKind,
    Channel,
    Delivery,
    DeliveryPurpose,
    DeliveryStatus,
    Urgency,
)

#: AMBER and urgent search first, then result messages, then everything non-urgent.
PRIORITIES = ("urgent", "result", "normal")
#: Writing a started action's outbox comes before sending anything: it feeds the others.
OUTBOX_QUEUE = "outbox"
BATCH_JOB = "outbound.jobs.send_batch"
OUTBOX_JOB = "outbound.jobs.write_action_outbox"
CODE_JOB = "outbound.codes.send_code"
#: Our job functions: each takes the worker's Runtime first (`outbound.worker.RuntimeJob`).
RUNTIME_JOBS = frozenset({BATCH_JOB, OUTBOX_JOB, CODE_JOB})


def queue_name(channel: Channel, priority: str) -> str:
    """The queue of CHANNEL's messages of PRIORITY (one of PRIORITIES)."""
    return f"{channel.value}-{priority}"


def queue_names(channels: tuple[Channel, ...] = tuple(Channel)) -> list[str]:
    """Queue names in the order a worker should drain them."""
    return [OUTBOX_QUEUE] + [queue_name(channel, priority) for priority in PRIORITIES
                             for channel in channels]


#: A person waits for a verification code: the urgent lane, behind nothing but urgent alerts.
CODE_QUEUE = queue_name(Channel.SMS, "urgent")


def queue(connection: redis.Redis, name: str) -> Queue:
    """The RQ queue NAME, with the JSON serializer every job of ours uses."""
    return Queue(name, connection=connection, serializer=JSONSerializer)


def _retry() -> Retry:
    """RQ's own retries of a job that failed (a database or Redis hiccup): not a message's."""
    return Retry(max=3, interval=[5, 30, 120])


def job_meta() -> dict[str, str]:
    """What a job carries of the context it is queued in (`core.logs`): the request id, so
    the worker's log lines for it, and for the jobs it queues in turn, name the request."""
    request_id = current_ids().get("request_id")
    return {"request_id": request_id} if isinstance(request_id, str) else {}


def job_log_ids(job: Job) -> dict[str, Any]:
    """The ids the log lines of JOB carry while a worker runs it."""
    request_id = job.meta.get("request_id")
    ids: dict[str, Any] = {"job_id": job.id,
                           "request_id": request_id if isinstance(request_id, str) else None}
    if job.func_name == OUTBOX_JOB and job.args and isinstance(job.args[0], int):
        ids["action_id"] = job.args[0]
    return ids


def priority_of(action: Action, purpose: DeliveryPurpose) -> str:
    """AMBER and urgent search first, then result messages, then everything non-urgent."""
    return priority_for(action.kind, action.urgency, purpose)


def priority_for(kind: ActionKind, urgency: Urgency, purpose: DeliveryPurpose) -> str:
    """`priority_of` for an action's KIND and URGENCY."""
    if purpose != DeliveryPurpose.ALERT:
        return "result"
    if kind == ActionKind.AMBER or urgency == Urgency.URGENT:
        return "urgent"
    return "normal"


@dataclass(frozen=True)
class Batch:
    """A unit of work for one RQ job: delivery ids of one channel and priority; NOT_BEFORE
    holds the job until then (the end of the recipients' quiet hours)."""

    queue: str
    delivery_ids: tuple[int, ...]
    not_before: datetime | None = None

    @property
    def job_id(self) -> str:
        return f"deliveries-{self.delivery_ids[0]}-{self.delivery_ids[-1]}"


def enqueue(connection: redis.Redis, batches: Iterable[Batch], delay: float = 0.0) -> int:
    """Put BATCHES on their queues in one pipeline (RQ's enqueue_many); returns the count.
    A batch held until `not_before` (quiet hours) goes to RQ's scheduler until then."""
    by_queue: dict[str, list[Batch]] = defaultdict(list)
    for batch in batches:
        by_queue[batch.queue].append(batch)
    now = time.time()
    with connection.pipeline() as pipe:
        for name, group in by_queue.items():
            target = queue(connection, name)
            jobs = [Queue.prepare_data(BATCH_JOB, args=(list(b.delivery_ids),),
                                       job_id=f"{b.job_id}-{int(time.time() * 1000)}",
                                       result_ttl=3600, failure_ttl=7 * 86400,
                                       retry=_retry(), meta=job_meta())
                    for b in group]
            waits = [max(delay, b.not_before.timestamp() - now if b.not_before else 0.0)
                     for b in group]
            for data, wait in zip(jobs, waits, strict=True):
                if wait > 0:
                    target.enqueue_in(timedelta(seconds=wait), data.func, *data.args,
                                      job_id=data.job_id, meta=data.meta,
                                      result_ttl=data.result_ttl, failure_ttl=data.failure_ttl,
                                      retry=data.retry, pipeline=pipe)
            now_jobs = [data for data, wait in zip(jobs, waits, strict=True) if wait <= 0]
            if now_jobs:
                target.enqueue_many(now_jobs, pipeline=pipe)
        pipe.execute()
    return sum(len(g) for g in by_queue.values())


def enqueue_outbox(connection: redis.Redis, action_id: int) -> None:
    """Have a worker write the outbox of an activated action (a web request must not wait
    for a national alert's million rows). One job per action: a second enqueue replaces it."""
    queue(connection, OUTBOX_QUEUE).enqueue(
        OUTBOX_JOB, action_id, job_id=f"outbox-{action_id}", result_ttl=3600,
        failure_ttl=7 * 86400, job_timeout=3600, retry=_retry(), meta=job_meta())


def enqueue_code(connection: redis.Redis, sealed: str, ttl: timedelta) -> str:
    """Queue the SMS carrying a verification code, SEALED (`outbound.codes.seal`); a job
    still waiting after TTL (the code's life) is dropped. Returns the job id."""
    job = queue(connection, CODE_QUEUE).enqueue(
        CODE_JOB, sealed, job_id=f"code-{uuid.uuid4().hex}", description="verification code",
        result_ttl=600, failure_ttl=86400, ttl=int(ttl.total_seconds()),
        retry=Retry(max=3, interval=[5, 15, 45]), meta=job_meta())
    return str(job.id)


def schedule(connection: redis.Redis, session: Session, delivery_ids: list[int]) -> None:
    """Each queued delivery back on its own queue after its backoff (RQ's scheduler holds it)."""
    if not delivery_ids:
        return
    rows = session.execute(select(Delivery, Action)
                           .join(Action, Action.id == Delivery.action_id)
                           .where(Delivery.id.in_(delivery_ids))).all()
    now = datetime.now(UTC)
    # those due in the same second share a job: a provider's breaker puts back many at once
    due: dict[tuple[str, int], list[int]] = defaultdict(list)
    for delivery, action in rows:
        name = queue_name(delivery.channel, priority_of(action, delivery.purpose))
        delay = max(0.0, ((delivery.next_attempt_at or now) - now).total_seconds())
        due[(name, math.ceil(delay))].append(delivery.id)
    for (name, delay), ids in due.items():
        enqueue(connection, [Batch(name, tuple(ids[start:start + REQUEUE_BATCH]))
                             for start in range(0, len(ids), REQUEUE_BATCH)], delay=delay)


#: Deliveries per batch when queued deliveries are put back on the queues.
REQUEUE_BATCH = 250
#: Deliveries held (a backoff, quiet hours) go in batches by the moment they are due, rounded
#: up to this: a batch's job fires once the last of its deliveries is due.
DUE_STEP = 10


def requeue(connection: redis.Redis, session: Session, delivery_ids: list[int]) -> int:
    """Those of DELIVERY_IDS still queued back on their queues, in batches (each held until
    its deliveries are due): for jobs that Redis lost. Returns the number of batches."""
    rows = session.execute(
        select(Delivery.id, Delivery.channel, Delivery.purpose, Delivery.next_attempt_at,
               Action.kind, Action.urgency)
        .join(Action, Action.id == Delivery.action_id)
        .where(Delivery.id.in_(delivery_ids), Delivery.status == DeliveryStatus.QUEUED)
        .order_by(Delivery.id)).all()
    now = datetime.now(UTC)
    groups: dict[tuple[str, datetime | None], list[int]] = defaultdict(list)
    for delivery_id, channel, purpose, due, kind, urgency in rows:
        held = None
        if due is not None and due > now:
            held = datetime.fromtimestamp(-(-due.timestamp() // DUE_STEP) * DUE_STEP, UTC)
        groups[(queue_name(channel, priority_for(kind, urgency, purpose)), held)].append(
            delivery_id)
    return enqueue(connection, [Batch(name, tuple(ids[start:start + REQUEUE_BATCH]), held)
                                for (name, held), ids in groups.items()
                                for start in range(0, len(ids), REQUEUE_BATCH)])
