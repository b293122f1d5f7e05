"""What a batch's sends come to: recorded in one transaction, failures through the retry
policy, and the deliveries to try again put back on their queues."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.orm import Session

from core.metrics import Metrics
from core.models import Delivery, DeliveryStatus
from outbound.queues import schedule
from outbound.retry import fail
from outbound.runtime import Runtime
from outbound.sender import Outcome


def record(session: Session, outcomes: list[Outcome], now: datetime,
           metrics: Metrics | None = None) -> list[int]:
    """Successes in one executemany; failures (few) through the retry policy. Returns the
    deliveries to try again."""
    table = cast(Table, Delivery.__table__)  # typed FromClause; a mapped class's is a Table
    sent = [{"d_id": work.delivery_id, "p_id": result, "p_name": name}
            for work, result, name in outcomes if isinstance(result, str)]
    if sent:
        session.execute(
            update(table)
            # also when reclaim already put it back in the queue: the provider has it
            .where(table.c.id == bindparam("d_id"),
                   (table.c.status == DeliveryStatus.SENDING)
                   | (table.c.status == DeliveryStatus.QUEUED))
            .values(status=DeliveryStatus.SENT, provider_id=bindparam("p_id"),
                    provider=bindparam("p_name"), provider_error=None, sent_at=now,
                    updated_at=now),
            sent)
        for work, result, _name in outcomes:
            if metrics is not None and isinstance(result, str):  # taken, whatever came first
                metrics.delivery(work.channel, work.purpose, DeliveryStatus.SENT)
    retry = []
    for work, result, _name in outcomes:
        if isinstance(result, str):
            continue
        delivery = session.get(Delivery, work.delivery_id)
        if delivery is None or delivery.status != DeliveryStatus.SENDING:
            continue  # a status callback already moved it on
        again = fail(session, delivery, str(result), result.retryable, now)
        if metrics is not None:
            metrics.delivery(delivery.channel, delivery.purpose, delivery.status)
        if again is not None:
            session.flush()
            retry.append(again.id)
    return retry


def queue_again(runtime: Runtime, delivery_ids: list[int]) -> None:
    """Each of DELIVERY_IDS back on its queue once its backoff has passed."""
    with runtime.writer() as session:
        schedule(runtime.redis_for("queueing retries"), session, delivery_ids)
