"""Taking back what was left behind, with the outbox in the database as the truth:
- deliveries whose claim's lease ran out (their worker died) and deliveries whose send got
  no answer (`unknown`): the provider is asked whether it took each one; those it did are
  recorded as sent, the rest are queued again (`reclaim`, every few seconds);
- queued deliveries whose jobs Redis lost: after Redis restarted, lost its data or could not
  be reached, every queued delivery is put back on the queues (`RedisWatch`, `refill`); and
  deliveries queued for long with no job in sight (a crash between commit and enqueue) are
  enqueued again (`requeue_orphans`).

A duplicate job is harmless, since claiming is atomic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
from sqlalchemy import select, update

from core.models import Delivery, DeliveryStatus
from outbound.callbacks import apply_early
from outbound.claim import Work, messages
from outbound.outcomes import queue_again
from outbound.providers import Provider, ProviderError
from outbound.queues import requeue
from outbound.retry import fail
from outbound.runtime import Runtime

log = logging.getLogger("burgernet.reclaim")

ORPHANED_AFTER = timedelta(minutes=5)
#: A look-up in progress holds its deliveries this long; one that failed is tried again then.
LOOK_UP_LEASE = timedelta(seconds=30)
#: Look-ups at the provider at once.
LOOK_UPS = 10
#: What a delivery taken back from a dead worker carries while it is looked up.
WORKER_GONE = "lease expired: the worker is gone"


@dataclass(frozen=True)
class Reclaimed:
    """What a reclaim round did with the deliveries it looked up: found at the provider
    (recorded as sent), not found (queued again, or failed for good), or not known yet (the
    look-up failed: asked again later)."""

    recorded: int = 0
    requeued: int = 0
    pending: int = 0


@dataclass(frozen=True)
class _Taken:
    attempt: int
    since: datetime


def reclaim(runtime: Runtime, now: datetime, limit: int = 5000) -> Reclaimed:
    """Deliveries left in `sending` past their lease, and `unknown` ones due for their
    look-up: ask the provider whether it took each one (from the attempt's start on);
    record those it did, queue the rest again. A delivery of a dead worker goes back at
    once (the attempt never failed at the provider); one whose request got no answer goes
    through the retry policy. Each step is a short transaction: no lock is held while the
    provider is asked."""
    taken, work = _take(runtime, now, limit)
    if not work:  # none, or only deliveries of participants who stopped (skipped)
        return Reclaimed()
    found = asyncio.run(_find_all(runtime, work, taken))
    recorded, requeue_now, pending = [], [], 0
    with runtime.writer() as session, session.begin():
        for item in work:
            delivery = session.get(Delivery, item.delivery_id)
            if delivery is None or delivery.status != DeliveryStatus.UNKNOWN \
                    or delivery.attempts != taken[item.delivery_id].attempt:
                continue  # settled meanwhile (a late outcome, another worker's look-up)
            result = found[item.delivery_id]
            if isinstance(result, tuple):
                delivery.status, delivery.provider_id, delivery.provider = \
                    DeliveryStatus.SENT, result[0], result[1]
                delivery.provider_error, delivery.sent_at = None, now
                recorded.append(result[0])
                runtime.metrics.delivery(delivery.channel, delivery.purpose, delivery.status)
            elif isinstance(result, ProviderError):
                pending += 1  # asked again once LOOK_UP_LEASE has passed
            elif delivery.provider_error == WORKER_GONE:
                delivery.status, delivery.next_attempt_at = DeliveryStatus.QUEUED, None
                delivery.provider_error = None
                requeue_now.append(delivery.id)
            else:
                again = fail(session, delivery, f"{delivery.provider_error}; not at the provider",
                             True, now)
                runtime.metrics.delivery(delivery.channel, delivery.purpose, delivery.status)
                if again is not None:
                    session.flush()
                    requeue_now.append(again.id)
    requeue_now += _apply_early(runtime, recorded, now)
    queue_again(runtime, requeue_now)
    return Reclaimed(len(recorded), len(work) - len(recorded) - pending, pending)


def _take(runtime: Runtime, now: datetime,
          limit: int) -> tuple[dict[int, _Taken], list[Work]]:
    """Expired leases become `unknown` (WORKER_GONE); they and the unknown ones due are held
    for LOOK_UP_LEASE; their messages."""
    with runtime.writer() as session, session.begin():
        stale = session.scalars(
            select(Delivery.id).where(Delivery.status == DeliveryStatus.SENDING,
                                      Delivery.next_attempt_at < now)
            .order_by(Delivery.id).limit(limit)).all()
        if stale:  # the lease is checked again: a renewal may have come in between
            session.execute(
                update(Delivery).where(Delivery.id.in_(stale),
                                       Delivery.status == DeliveryStatus.SENDING,
                                       Delivery.next_attempt_at < now)
                .values(status=DeliveryStatus.UNKNOWN, provider_error=WORKER_GONE,
                        next_attempt_at=now, updated_at=Delivery.updated_at))
        due = (select(Delivery.id).where(Delivery.status == DeliveryStatus.UNKNOWN,
                                         Delivery.next_attempt_at <= now)
               .order_by(Delivery.id).limit(limit))
        rows = session.execute(
            # checked again: a second sweep at the same moment takes none of them twice
            update(Delivery).where(Delivery.id.in_(due),
                                   Delivery.status == DeliveryStatus.UNKNOWN,
                                   Delivery.next_attempt_at <= now)
            .values(next_attempt_at=now + LOOK_UP_LEASE, updated_at=Delivery.updated_at)
            .returning(Delivery.id, Delivery.attempts, Delivery.updated_at)).all()
        taken = {row[0]: _Taken(row[1], row[2]) for row in rows}
        work = messages(session, runtime, list(taken)) if taken else []
    return taken, work


async def _find_all(runtime: Runtime, work: Sequence[Work], taken: dict[int, _Taken]
                    ) -> dict[int, tuple[str, str] | ProviderError | None]:
    """Per delivery: the provider's id and name where it took the message, None where it
    did not, the error where it could not be asked."""
    providers = {channel: runtime.providers[channel]()
                 for channel in {item.channel for item in work}}
    at_once = asyncio.Semaphore(LOOK_UPS)

    async def find(item: Work) -> tuple[str, str] | ProviderError | None:
        provider: Provider = providers[item.channel]
        async with at_once:
            try:
                sid = await provider.find_sent(item.message, taken[item.delivery_id].since)
            except ProviderError as error:
                return error
            except Exception as exc:  # an HTTP client's own errors: not known, ask later
                return ProviderError(True, "look_up", detail=type(exc).__name__)
        return (sid, provider.name) if sid else None

    try:
        found = await asyncio.gather(*(find(item) for item in work))
        return {item.delivery_id: result for item, result in zip(work, found, strict=True)}
    finally:  # made for this loop alone: closed here, whether or not batches keep theirs
        for provider in {id(p): p for p in providers.values()}.values():
            await provider.close()


def _apply_early(runtime: Runtime, provider_ids: list[str], now: datetime) -> list[int]:
    """Statuses that came for messages found only now (kept in Redis until recorded)."""
    if not provider_ids or runtime.redis is None:
        return []
    with runtime.writer() as session, session.begin():
        return apply_early(session, runtime.redis, provider_ids, now)


def requeue_orphans(runtime: Runtime, now: datetime, limit: int = 5000) -> int:
    """Deliveries `queued` for long with no job in sight (a crash between commit and
    enqueue) enqueued again; the number of deliveries."""
    with runtime.writer() as session:
        orphans = session.scalars(
            select(Delivery.id).where(Delivery.status == DeliveryStatus.QUEUED,
                                      Delivery.updated_at < now - ORPHANED_AFTER,
                                      (Delivery.next_attempt_at.is_(None))
                                      | (Delivery.next_attempt_at < now - ORPHANED_AFTER))
            .limit(limit)).all()
        if orphans:
            requeue(runtime.redis_for("reclaiming deliveries"), session, list(orphans))
    return len(orphans)


def refill(runtime: Runtime, chunk: int = 5000) -> int:
    """Every queued delivery back on the queues, CHUNK at a time; the number of deliveries."""
    connection = runtime.redis_for("refilling the queues")
    after, total = 0, 0
    while True:
        with runtime.sessions() as session:
            ids = session.scalars(
                select(Delivery.id).where(Delivery.status == DeliveryStatus.QUEUED,
                                          Delivery.id > after)
                .order_by(Delivery.id).limit(chunk)).all()
            if not ids:
                return total
            requeue(connection, session, list(ids))
        total, after = total + len(ids), ids[-1]


#: When the outbox was last refilled (the moment its reading began, as a Unix time): kept in
#: Redis, so an emptied Redis has none.
REFILLED_KEY = "burgernet:outbox-refilled"
REFILL_LOCK = "burgernet:outbox-refill"
#: Clocks of two hosts may differ this much (seconds).
SKEW = 2.0


class RedisWatch:
    """Notices when Redis may have lost jobs, and then has the outbox refilled once Redis is
    back: Redis restarted or another took over after a failover (its run_id changed; the new
    primary may lack the jobs last written to the old one, replication being asynchronous), it
    lost its data (REFILLED_KEY is gone), this process still talks to a demoted primary (a
    replica now), or it could not reach Redis (`trouble`: what it meant to enqueue may be
    lost). One refill that began after a worker's trouble ended serves that worker too."""

    def __init__(self) -> None:
        self.run_id: str | None = None
        self.owed = False
        #: When Redis answered again after the trouble (Unix time): a refill must begin later.
        self.owed_since: float | None = None

    def trouble(self) -> None:
        """This process failed to reach Redis, or a job of it the database."""
        self.owed, self.owed_since = True, None

    def check(self, runtime: Runtime) -> int | None:
        """Refill the queues if they may have lost jobs and no other worker did so since;
        the number of deliveries put back, or None."""
        connection = runtime.redis_for("watching the queues")
        try:
            with connection.pipeline(transaction=False) as pipe:
                pipe.info("server")
                pipe.info("replication")
                pipe.get(REFILLED_KEY)
                server, replication, refilled = pipe.execute()
        except redis.RedisError:
            self.trouble()
            return None
        if replication["role"] != "master":
            # a primary demoted by a failover still answers reads: drop the connections, so
            # that a Sentinel-managed client asks where the primary is now
            self.trouble()
            connection.connection_pool.disconnect()
            return None
        if refilled is None or (self.run_id is not None and server["run_id"] != self.run_id):
            self.trouble()
        self.run_id = server["run_id"]
        if not self.owed:
            return None
        if self.owed_since is None:
            self.owed_since = time.time()
        if refilled is not None and float(refilled) >= self.owed_since + SKEW:
            self.owed = False  # another worker refilled after this one's trouble ended
            return None
        return self._refill(runtime, connection)

    def _refill(self, runtime: Runtime, connection: redis.Redis) -> int | None:
        if not connection.set(REFILL_LOCK, "1", nx=True, ex=300):
            return None  # another worker is at it: look again at the next round
        try:
            began = time.time()
            count = refill(runtime)
            connection.set(REFILLED_KEY, repr(began))
        finally:
            connection.delete(REFILL_LOCK)
        self.owed, self.owed_since = False, None
        return count
