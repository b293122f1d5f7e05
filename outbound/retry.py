"""Retry and failover policy: plain decisions over a delivery, shared by the send job and the
status callbacks.

A transient failure (5xx, 429, timeout, a busy or unanswered call) is tried again after an
exponential backoff with full jitter, up to a per-channel number of attempts; a permanent one
(an invalid number) is not. After the last failure the channel's failover is tried once:
a call that never got through becomes an SMS. STOP is final: nothing is retried for a
participant who stopped.

A provider that refuses service as a whole (503, 429, unreachable: `outbound.breaker`) says
nothing about the message: such a send counts no attempt and waits for the provider, as long
as the delivery is younger than PATIENCE. A meldkamer wants an alert out as soon as the
carrier is back, not marked failed after half a minute of outage; ending the action stops
what still waits (`outbound.claim.messages`). Past PATIENCE a late alert is of little use,
and the refusals count as failed attempts again, so the delivery ends.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.models import Channel, Delivery, DeliveryStatus

MAX_ATTEMPTS = {Channel.SMS: 4, Channel.VOICE: 3, Channel.EMAIL: 3, Channel.PUSH: 3}
FAILOVER = {Channel.VOICE: Channel.SMS}
#: How long a delivery waits out a provider refusing service before refusals count.
PATIENCE = timedelta(hours=1)


def backoff(attempt: int) -> timedelta:
    """Full jitter: up to 5 s after the first attempt, 10 s, 20 s ... at most 5 minutes."""
    return timedelta(seconds=random.uniform(0, min(300.0, 5.0 * 2 ** (attempt - 1))))


def fail(session: Session, delivery: Delivery, reason: str, retryable: bool,
         now: datetime) -> Delivery | None:
    """Record a failed attempt; returns the delivery to (re)queue: itself, its failover, or
    None when this was the end of the line."""
    delivery.provider_error = reason[:255]
    delivery.updated_at = now
    if retryable and delivery.attempts < MAX_ATTEMPTS[delivery.channel]:
        delivery.status = DeliveryStatus.QUEUED
        delivery.next_attempt_at = now + backoff(delivery.attempts)
        return delivery
    delivery.status, delivery.completed_at = DeliveryStatus.FAILED, now
    return failover(session, delivery, now)


def failover(session: Session, delivery: Delivery, now: datetime) -> Delivery | None:
    """A delivery on the failover channel, unless the participant already has one."""
    channel = FAILOVER.get(delivery.channel)
    if channel is None:
        return None
    exists = session.scalar(select(Delivery.id).where(
        Delivery.action_id == delivery.action_id,
        Delivery.participant_id == delivery.participant_id,
        Delivery.channel == channel, Delivery.purpose == delivery.purpose))
    if exists is not None:
        return None
    backup = Delivery(action_id=delivery.action_id, participant_id=delivery.participant_id,
                      channel=channel, purpose=delivery.purpose, language=delivery.language,
                      status=DeliveryStatus.QUEUED, created_at=now, updated_at=now)
    try:
        with session.begin_nested():
            session.add(backup)
    except IntegrityError:  # another worker made it first
        return None
    return backup
