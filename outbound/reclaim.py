"""Taking back what a dead worker left: deliveries stuck in `sending` past their lease, and
deliveries `queued` with no job in sight (a crash between commit and enqueue)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from core.models import Delivery, DeliveryStatus
from outbound.claim import Work, messages
from outbound.outcomes import queue_again
from outbound.queues import schedule
from outbound.runtime import Runtime

ORPHANED_AFTER = timedelta(minutes=5)


@dataclass(frozen=True)
class Reclaimed:
    """What a reclaim round did: in-flight deliveries the provider had taken (recorded) or
    not (requeued), and queued deliveries enqueued again (orphans)."""

    recorded: int = 0
    requeued: int = 0
    orphans: int = 0


def reclaim(runtime: Runtime, now: datetime, limit: int = 5000) -> Reclaimed:
    """Deliveries left in `sending` by a worker that died: ask the provider whether it took
    each one; record those it did, queue the rest again. Deliveries `queued` for long with
    no job in sight (a crash between commit and enqueue) are enqueued again too; a duplicate
    job is harmless, since claiming is atomic."""
    with runtime.writer() as session:
        orphans = session.scalars(
            select(Delivery.id).where(Delivery.status == DeliveryStatus.QUEUED,
                                      Delivery.updated_at < now - ORPHANED_AFTER,
                                      (Delivery.next_attempt_at.is_(None))
                                      | (Delivery.next_attempt_at < now - ORPHANED_AFTER))
            .limit(limit)).all()
        schedule(runtime.redis_for("reclaiming deliveries"), session, list(orphans))
    with runtime.writer() as session, session.begin():
        stale = session.scalars(
            select(Delivery.id).where(Delivery.status == DeliveryStatus.SENDING,
                                      Delivery.next_attempt_at < now)
            .order_by(Delivery.id).limit(limit).with_for_update(skip_locked=True)).all()
        if not stale:
            return Reclaimed(orphans=len(orphans))
        work = messages(session, runtime, stale)
        since = {d.id: d.updated_at for d in session.scalars(
            select(Delivery).where(Delivery.id.in_(stale)))}
        found = asyncio.run(_find_all(runtime, work, since))
        requeue = []
        for item in work:
            delivery = session.get(Delivery, item.delivery_id)
            assert delivery is not None
            if found.get(item.delivery_id):
                delivery.status, delivery.provider_id = DeliveryStatus.SENT, found[item.delivery_id]
                delivery.sent_at = delivery.sent_at or now
            else:
                delivery.status, delivery.next_attempt_at = DeliveryStatus.QUEUED, None
                requeue.append(delivery.id)
    queue_again(runtime, requeue)
    return Reclaimed(len(work) - len(requeue), len(requeue), len(orphans))


async def _find_all(runtime: Runtime, work: list[Work],
                    since: dict[int, datetime]) -> dict[int, str | None]:
    providers = {channel: runtime.providers[channel]()
                 for channel in {item.channel for item in work}}
    try:
        found = {}
        for item in work:  # a few at most, after a crash: one lookup each is fine
            found[item.delivery_id] = await providers[item.channel].find_sent(
                item.message, since[item.delivery_id])
        return found
    finally:  # made for this loop alone: closed here, whether or not batches keep theirs
        for provider in {id(p): p for p in providers.values()}.values():
            await provider.close()
