"""Provider status callbacks: move a delivery forward, never back, and only once.

Callbacks arrive at two or three times the send rate, out of order and sometimes twice; each
is one indexed UPDATE guarded by the current state, so a late or repeated one changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from core.models import Delivery, DeliveryStatus

#: How far along each state is; a callback may only move a delivery to a higher rank.
RANK = {DeliveryStatus.QUEUED: 0, DeliveryStatus.SENDING: 1, DeliveryStatus.SENT: 2,
        DeliveryStatus.DELIVERED: 3, DeliveryStatus.ANSWERED: 3, DeliveryStatus.FAILED: 3,
        DeliveryStatus.SKIPPED: 3}
FINAL = {s for s, rank in RANK.items() if rank == 3}

#: Twilio's MessageStatus and CallStatus values, as our states.
TWILIO = {
    "queued": None, "accepted": None, "scheduled": None, "sending": None,
    "sent": DeliveryStatus.SENT, "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.DELIVERED, "undelivered": DeliveryStatus.FAILED,
    "failed": DeliveryStatus.FAILED, "canceled": DeliveryStatus.FAILED,
    "initiated": None, "ringing": DeliveryStatus.SENT, "in-progress": DeliveryStatus.ANSWERED,
    "answered": DeliveryStatus.ANSWERED, "completed": DeliveryStatus.ANSWERED,
    "busy": DeliveryStatus.FAILED, "no-answer": DeliveryStatus.FAILED,
}


class UnknownStatus(ValueError):
    """A status value this provider does not document."""


def apply_status(session: Session, provider_id: str, value: str, now: datetime,
                 error: str | None = None) -> bool:
    """Record a provider's status for the delivery it names; True when anything changed."""
    if value not in TWILIO:
        raise UnknownStatus(value)
    target = TWILIO[value]
    if target is None:
        return False
    lower = [s for s, rank in RANK.items() if rank < RANK[target]]
    values: dict[str, object] = {"status": target, "updated_at": now}
    if target in FINAL:
        values["completed_at"] = now
    if target == DeliveryStatus.FAILED:
        values["provider_error"] = f"{value}{f' ({error})' if error else ''}"[:255]
    result = session.execute(update(Delivery)
                             .where(Delivery.provider_id == provider_id,
                                    Delivery.status.in_(lower))
                             .values(**values))
    return bool(result.rowcount)
