"""What a batch's sends come to: recorded in one transaction, failures through the retry
policy, unanswered requests left for a look-up at the provider, and the deliveries to try
again put back on their queues.

Each outcome is about one claim (a delivery and its attempt): once reclaim has taken a claim
back (`outbound.reclaim`), only a send that went through is still recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.orm import Session

from core.db import changed_rows
from core.metrics import Metrics
from core.models import Delivery, DeliveryStatus
from outbound import retry as policy
from outbound.claim import Work
from outbound.providers import ProviderError
from outbound.queues import schedule
from outbound.retry import PATIENCE, fail
from outbound.runtime import Runtime
from outbound.sender import HeldBack, NotSent, Outcome

#: How long after a request that got no answer the provider is asked whether it took the
#: message: a late answer (far beyond the client's timeout) has come by then.
LOOK_UP_AFTER = timedelta(seconds=30)


def record(session: Session, outcomes: list[Outcome], now: datetime,
           metrics: Metrics | None = None) -> list[int]:
    """Successes in one executemany; failures (few) through the retry policy; unanswered
    requests `unknown`, to be looked up after LOOK_UP_AFTER. Returns the deliveries to try
    again."""
    table = cast(Table, Delivery.__table__)  # typed FromClause; a mapped class's is a Table
    sent = [{"d_id": work.delivery_id, "p_id": result, "p_name": name}
            for work, result, name in outcomes if isinstance(result, str)]
    if sent:
        session.execute(
            update(table)
            # also when reclaim already took it back: the provider has it
            .where(table.c.id == bindparam("d_id"),
                   (table.c.status == DeliveryStatus.SENDING)
                   | (table.c.status == DeliveryStatus.QUEUED)
                   | (table.c.status == DeliveryStatus.UNKNOWN))
            .values(status=DeliveryStatus.SENT, provider_id=bindparam("p_id"),
                    provider=bindparam("p_name"), provider_error=None, sent_at=now,
                    updated_at=now),
            sent)
        for work, result, _name in outcomes:
            if metrics is not None and isinstance(result, str):  # taken, whatever came first
                metrics.delivery(work.channel, work.purpose, DeliveryStatus.SENT)
    retry = []
    skew = now - datetime.now(UTC)  # a test's clock against the breaker's Unix times
    for work, result, name in outcomes:
        if isinstance(result, str):
            continue
        if isinstance(result, NotSent) or result.unknown:
            put_back = _not_answered(session, work, result, name, now, skew)
            if metrics is not None and not isinstance(result, NotSent):
                metrics.delivery(work.channel, work.purpose, DeliveryStatus.UNKNOWN)
            if put_back is not None:
                retry += put_back
                continue
        delivery = session.get(Delivery, work.delivery_id)
        if delivery is None or delivery.status != DeliveryStatus.SENDING \
                or delivery.attempts != work.attempt:
            continue  # a status callback moved it on, or reclaim took this claim back
        again = fail(session, delivery, str(result), result.retryable, now)
        if metrics is not None:
            metrics.delivery(delivery.channel, delivery.purpose, delivery.status)
        if again is not None:
            session.flush()
            retry.append(again.id)
    return retry


def _not_answered(session: Session, work: Work, error: ProviderError, provider: str,
                  now: datetime, skew: timedelta = timedelta(0)) -> list[int] | None:
    """A send that never went out (queued again, the attempt not counted), or whose answer
    never came (`unknown`, looked up after LOOK_UP_AFTER). None: held back by a provider that
    has refused service for longer than PATIENCE: a failed attempt after all."""
    mine = update(Delivery).where(Delivery.id == work.delivery_id,
                                  Delivery.status == DeliveryStatus.SENDING,
                                  Delivery.attempts == work.attempt)
    if isinstance(error, HeldBack):
        # those held back by one opening of the breaker are due at the same moment
        due = (datetime.fromtimestamp(error.until, UTC) + skew if error.until is not None
               else now + policy.backoff(work.attempt))
        again = changed_rows(session, mine.where(Delivery.created_at > now - PATIENCE).values(
            status=DeliveryStatus.QUEUED, attempts=Delivery.attempts - 1,
            next_attempt_at=max(due, now), provider_error=str(error)[:255], updated_at=now))
        return [work.delivery_id] if again else None
    if isinstance(error, NotSent):
        again = changed_rows(session, mine.values(status=DeliveryStatus.QUEUED,
                                                  attempts=Delivery.attempts - 1,
                                                  next_attempt_at=None))
        return [work.delivery_id] if again else []
    # updated_at stays the attempt's start: the look-up searches from there
    session.execute(mine.values(status=DeliveryStatus.UNKNOWN, provider=provider,
                                provider_error=str(error)[:255],
                                next_attempt_at=now + LOOK_UP_AFTER,
                                updated_at=Delivery.updated_at))
    return []


def queue_again(runtime: Runtime, delivery_ids: list[int]) -> None:
    """Each of DELIVERY_IDS back on its queue once its backoff has passed."""
    with runtime.writer() as session:
        schedule(runtime.redis_for("queueing retries"), session, delivery_ids)
