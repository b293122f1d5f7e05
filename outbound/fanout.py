"""Starting an action: write the outbox (one Delivery per participant × channel) in bulk, then
hand it to the queues in batches.

The outbox is the truth: a batch job carries only delivery ids, and a delivery that is not
`queued` any more is skipped by whoever meets it, so enqueueing twice never sends twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core import audit
from core.db import bulk_insert
from core.errors import BurgernetError
from core.geo import Area, circle, polygon
from core.models import (
    Action,
    ActionKind,
    ActionStatus,
    Channel,
    Delivery,
    DeliveryPurpose,
    DeliveryStatus,
    Urgency,
    User,
)
from core.targeting import select_recipient_batches

BATCH_SIZE = 250
DELIVERY_COLUMNS = ("action_id", "participant_id", "channel", "purpose", "language", "status",
                    "attempts", "created_at", "updated_at")


class ActionError(BurgernetError, ValueError):
    """An action that cannot be started or ended as asked."""

    error_id = "action_error"


@dataclass(frozen=True)
class Batch:
    """A unit of work for one RQ job: delivery ids of one channel and priority."""

    queue: str
    delivery_ids: tuple[int, ...]

    @property
    def job_id(self) -> str:
        return f"deliveries-{self.delivery_ids[0]}-{self.delivery_ids[-1]}"


@dataclass
class StartResult:
    """What starting an action did."""

    action_id: int
    started: bool
    deliveries: int = 0
    batches: list[Batch] = field(default_factory=list)


def priority_of(action: Action, purpose: DeliveryPurpose) -> str:
    """AMBER and urgent search first, then result messages, then everything non-urgent."""
    if purpose != DeliveryPurpose.ALERT:
        return "result"
    if action.kind == ActionKind.AMBER or action.urgency == Urgency.URGENT:
        return "urgent"
    return "normal"


def area_of(action: Action) -> Area:
    """The action's area, validated again: a draft may have been stored by older code."""
    if action.polygon is not None:
        return polygon(action.polygon)
    if action.center_lat is None or action.center_lon is None or action.radius_m is None:
        raise ActionError(f"action {action.id} has no area")
    return circle(action.center_lat, action.center_lon, action.radius_m)


def start_action(session: Session, action_id: int, *, now: datetime,
                 user: User | None = None) -> StartResult:
    """Activate a draft action and write its outbox; a second call changes nothing.

    The caller commits, then enqueues `result.batches` (see `outbound.dispatch.enqueue`).
    """
    action = session.get(Action, action_id, with_for_update=True)
    if action is None:
        raise ActionError(f"no action {action_id}")
    if action.status != ActionStatus.DRAFT:
        return StartResult(action_id, started=False)
    area = area_of(action)
    claimed = session.execute(
        update(Action).where(Action.id == action_id, Action.status == ActionStatus.DRAFT)
        .values(status=ActionStatus.ACTIVE, started_at=now))
    if claimed.rowcount != 1:
        return StartResult(action_id, started=False)
    session.refresh(action)
    written = write_outbox(session, action, area, DeliveryPurpose.ALERT, now)
    audit.record(session, "start", "action", action.id, user=user, actor=None if user else "cli",
                 deliveries=written)
    return StartResult(action_id, started=True, deliveries=written,
                       batches=list(queued_batches(session, action, DeliveryPurpose.ALERT)))


def write_outbox(session: Session, action: Action, area: Area, purpose: DeliveryPurpose,
                 now: datetime) -> int:
    """One queued Delivery per recipient, written batch by batch as the selection streams."""
    urgency = Urgency(action.urgency)
    connection = session.connection()
    written = 0
    for recipients in select_recipient_batches(session, area, urgency, now):
        rows = [(action.id, pid, channel.value, purpose.value, language.value,
                 DeliveryStatus.QUEUED.value, 0, now, now)
                for pid, channel, language in recipients]
        bulk_insert(connection, Delivery.__table__, DELIVERY_COLUMNS, rows)
        written += len(rows)
    return written


def queued_batches(session: Session, action: Action, purpose: DeliveryPurpose,
                   size: int = BATCH_SIZE) -> Iterator[Batch]:
    """The action's deliveries of one purpose that may go now, by channel, in batches."""
    priority = priority_of(action, purpose)
    for channel in Channel:
        ids = session.scalars(
            select(Delivery.id).where(Delivery.action_id == action.id,
                                      Delivery.purpose == purpose,
                                      Delivery.channel == channel,
                                      Delivery.status == DeliveryStatus.QUEUED,
                                      Delivery.next_attempt_at.is_(None))
            .order_by(Delivery.id)).all()
        for start in range(0, len(ids), size):
            yield Batch(f"{channel.value}-{priority}", tuple(ids[start:start + size]))

