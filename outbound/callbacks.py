"""Provider status callbacks: move a delivery forward, never back, and only once.

Callbacks arrive at two or three times the send rate, out of order and sometimes twice; each
is one indexed UPDATE guarded by the current state, so a late or repeated one changes nothing.
Only a delivery that is out (sending or further) moves: one queued again for another try
still carries the id of its last attempt, whose replayed callbacks must not touch the new one.
"""

from __future__ import annotations

import json
from datetime import datetime

import redis
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.metrics import Metrics
from core.models import Delivery, DeliveryStatus
from core.settings import Settings
from ivr.flows import call_ended
from outbound.retry import fail
from outbound.throttle import call_slots, call_token

#: How far along each state is; a callback may only move a delivery to a higher rank (and an
#: answering machine's verdict turns "answered" into what it was: voicemail, or a fax).
RANK = {DeliveryStatus.QUEUED: 0, DeliveryStatus.SENDING: 1, DeliveryStatus.UNKNOWN: 1,
        DeliveryStatus.SENT: 2, DeliveryStatus.DELIVERED: 3, DeliveryStatus.ANSWERED: 3,
        DeliveryStatus.VOICEMAIL: 3, DeliveryStatus.FAILED: 3, DeliveryStatus.SKIPPED: 3}
FINAL = {s for s, rank in RANK.items() if rank == 3}

#: Twilio's MessageStatus and CallStatus values, as our states (None: no move). The lists are
#: those of Twilio's Message and Call resources (the official client's MessageInstance.Status
#: and CallInstance.Status) and of its call progress events. partially_delivered says the
#: carrier took the message but only some of it arrived: sent, not confirmed, and not a
#: failure that a retry would repeat. receiving and received are states of inbound messages.
TWILIO = {
    "queued": None, "accepted": None, "scheduled": None, "sending": None,
    "sent": DeliveryStatus.SENT, "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.DELIVERED, "undelivered": DeliveryStatus.FAILED,
    "failed": DeliveryStatus.FAILED, "canceled": DeliveryStatus.FAILED,
    "partially_delivered": DeliveryStatus.SENT, "receiving": None, "received": None,
    "initiated": None, "ringing": DeliveryStatus.SENT, "in-progress": DeliveryStatus.ANSWERED,
    "answered": DeliveryStatus.ANSWERED, "completed": DeliveryStatus.ANSWERED,
    "busy": DeliveryStatus.FAILED, "no-answer": DeliveryStatus.FAILED,
}


#: Twilio's AnsweredBy (answering machine detection) for a machine that takes a message: with
#: MachineDetection=DetectMessageEnd it comes once the greeting has ended (machine_end_*), with
#: Enable as soon as a machine is heard (machine_start). human, unknown or none: a person.
MACHINE = frozenset({"machine_start", "machine_end_beep", "machine_end_silence",
                     "machine_end_other"})
FAX = "fax"


def answered_by(value: str | None) -> str:
    """"machine", "fax" or "person" for Twilio's AnsweredBy VALUE."""
    if value in MACHINE:
        return "machine"
    return "fax" if value == FAX else "person"


class UnknownStatus(ValueError):
    """A status value this provider does not document (yet): logged and otherwise ignored."""


#: Call outcomes worth another try: the person may answer next time.
TRANSIENT = {"busy", "no-answer"}
#: Final call states: the call no longer holds a line on the trunk.
CALL_ENDED = {"completed", "busy", "no-answer", "failed", "canceled"}
#: How long a status that came before its send was recorded waits for it.
EARLY_TTL = 3600


def apply_status(session: Session, provider_id: str, value: str, now: datetime,
                 error: str | None = None, answered: str | None = None,
                 metrics: Metrics | None = None) -> list[int]:
    """Record a provider's status for the delivery it names; ANSWERED is Twilio's AnsweredBy
    when the call was answered with machine detection on.

    Returns the ids of deliveries to queue again: a retry of a busy or unanswered call, or
    the SMS that replaces a call that never got through (or that a fax took).
    """
    if value not in TWILIO:
        raise UnknownStatus(value)
    target = TWILIO[value]
    if target is None:
        return []
    lower = [s for s, rank in RANK.items() if 0 < rank < RANK[target]]
    kind = answered_by(answered)
    if target == DeliveryStatus.ANSWERED and kind != "person":
        target = DeliveryStatus.VOICEMAIL if kind == "machine" else DeliveryStatus.FAILED
        lower.append(DeliveryStatus.ANSWERED)
        value, error = kind, None  # a fax: "fax", not retried
    if target == DeliveryStatus.FAILED:
        delivery = session.scalar(select(Delivery).where(Delivery.provider_id == provider_id,
                                                         Delivery.status.in_(lower))
                                  .with_for_update())
        if delivery is None:
            return _unmatched(session, provider_id)
        reason = f"{value}{f' ({error})' if error else ''}"
        again = fail(session, delivery, reason, value in TRANSIENT, now)
        session.flush()
        if metrics is not None:
            metrics.delivery(delivery.channel, delivery.purpose, delivery.status)
        return [again.id] if again is not None else []
    values: dict[str, object] = {"status": target, "updated_at": now}
    if target in FINAL:
        values["completed_at"] = now
    moved = session.execute(update(Delivery)
                            .where(Delivery.provider_id == provider_id,
                                   Delivery.status.in_(lower))
                            .values(**values)
                            .returning(Delivery.channel, Delivery.purpose)).all()
    if metrics is not None:
        for channel, purpose in moved:
            metrics.delivery(channel, purpose, target)
    return [] if moved else _unmatched(session, provider_id)


class Early(list[int]):
    """What `apply_status` returns for a status of a send not recorded yet (empty)."""


def _unmatched(session: Session, provider_id: str) -> list[int]:
    """[] for a late or repeated status; Early() when no delivery has this id yet: the
    batch that sent it records the id when its last send is out, which for a slow sender
    can be minutes after the call ended or the message arrived."""
    known = session.scalar(select(Delivery.id).where(Delivery.provider_id == provider_id))
    return [] if known is not None else Early()


def apply_or_keep(session: Session, connection: redis.Redis | None, provider_id: str,
                  value: str, now: datetime, error: str | None = None,
                  answered: str | None = None, metrics: Metrics | None = None) -> list[int]:
    """`apply_status`, keeping a status that came before its send was recorded in Redis,
    for `apply_early` to apply once it is."""
    again = apply_status(session, provider_id, value, now, error, answered, metrics)
    if isinstance(again, Early) and connection is not None:
        key = f"early-status:{provider_id}"
        with connection.pipeline() as pipe:
            pipe.rpush(key, json.dumps([value, error, answered]))
            pipe.expire(key, EARLY_TTL)
            pipe.execute()
    return list(again)


def apply_early(session: Session, connection: redis.Redis, provider_ids: list[str],
                now: datetime, metrics: Metrics | None = None) -> list[int]:
    """Apply the statuses kept for these just-recorded sends (one Redis round trip)."""
    if not provider_ids:
        return []
    keys = [f"early-status:{provider_id}" for provider_id in provider_ids]
    with connection.pipeline() as pipe:
        for key in keys:
            pipe.lrange(key, 0, -1)
        pipe.delete(*keys)
        kept = pipe.execute()[:-1]
    again: list[int] = []
    for provider_id, values in zip(provider_ids, kept, strict=True):
        for raw in values:
            value, error, *answered = json.loads(raw)  # kept before AnsweredBy: two items
            again += apply_status(session, provider_id, value, now, error,
                                  answered[0] if answered else None, metrics)
    return again


def end_call(session: Session, connection: redis.Redis | None, settings: Settings,
             call_id: str, status: str, now: datetime, *, delivery_id: int | None = None,
             error: str | None = None, answered: str | None = None,
             metrics: Metrics | None = None) -> list[int]:
    """The end of an outbound call, whichever transport carried it: Twilio's final CallStatus
    (`web.webhooks`) or the end of a SIP conversation (`outbound.providers.sip`).

    The delivery takes STATUS (kept in Redis until its batch has recorded the call, when that
    comes later), the call's record is closed, and its line on the trunk is freed at once:
    DELIVERY_ID names it, else the delivery that recorded CALL_ID. Returns the deliveries to
    queue again once the caller has committed (`outbound.queues.schedule`)."""
    again = apply_or_keep(session, connection, call_id, status, now, error, answered, metrics)
    call_ended(session, now, call_id=call_id)
    if connection is not None:
        delivery_id = delivery_id or session.scalar(
            select(Delivery.id).where(Delivery.provider_id == call_id))
        if delivery_id is not None:
            call_slots(connection, settings).release(call_token(delivery_id))
    return again
