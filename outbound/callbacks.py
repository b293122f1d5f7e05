"""Provider status callbacks: move a delivery forward, never back, and only once.

Callbacks arrive at two or three times the send rate, out of order and sometimes twice; each
is one indexed UPDATE guarded by the current state, so a late or repeated one changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.models import Delivery, DeliveryStatus
from outbound.retry import fail

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


#: Call outcomes worth another try: the person may answer next time.
TRANSIENT = {"busy", "no-answer"}
#: Final call states: the call no longer holds a line on the trunk.
CALL_ENDED = {"completed", "busy", "no-answer", "failed", "canceled"}


def apply_status(session: Session, provider_id: str, value: str, now: datetime,
                 error: str | None = None) -> list[int]:
    """Record a provider's status for the delivery it names.

    Returns the ids of deliveries to queue again: a retry of a busy or unanswered call, or
    the SMS that replaces a call that never got through.
    """
    if value not in TWILIO:
        raise UnknownStatus(value)
    target = TWILIO[value]
    if target is None:
        return []
    lower = [s for s, rank in RANK.items() if rank < RANK[target]]
    if target == DeliveryStatus.FAILED:
        delivery = session.scalar(select(Delivery).where(Delivery.provider_id == provider_id,
                                                         Delivery.status.in_(lower))
                                  .with_for_update())
        if delivery is None:
            return []
        reason = f"{value}{f' ({error})' if error else ''}"
        again = fail(session, delivery, reason, value in TRANSIENT, now)
        session.flush()
        return [again.id] if again is not None else []
    values: dict[str, object] = {"status": target, "updated_at": now}
    if target in FINAL:
        values["completed_at"] = now
    session.execute(update(Delivery)
                    .where(Delivery.provider_id == provider_id, Delivery.status.in_(lower))
                    .values(**values))
    return []
