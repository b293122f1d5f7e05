"""Claiming a batch's deliveries (queued → sending, in one statement) and building their
messages.

A delivery that a duplicate job, a retry or a second worker already took is not `queued` any
more, so the claim skips it: enqueueing twice never sends twice. A claim holds for a lease;
past it, reclaim (`outbound.reclaim`) may take the delivery back from a worker that died.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.models import (
    Action,
    ActionKind,
    ActionStatus,
    Channel,
    Delivery,
    DeliveryPurpose,
    DeliveryStatus,
    Language,
    Participant,
    ParticipantStatus,
)
from core.push import active_push_targets
from outbound.links import reaction_link
from outbound.providers import Message
from outbound.queues import priority_of
from outbound.runtime import Runtime
from outbound.templates import inquiry_text, message_text, subject_text

#: A scheduled job may fire a moment early, or on a host whose clock runs ahead.
EARLY = timedelta(seconds=2)
LEASE_MARGIN = timedelta(minutes=2)


@dataclass(frozen=True)
class Work:
    """One claimed delivery and the message that carries it."""

    delivery_id: int
    channel: Channel
    message: Message
    purpose: DeliveryPurpose


def lease(runtime: Runtime, count: int) -> timedelta:
    """How long a claim holds before reclaim may take it: the batch at the slowest rate,
    plus two minutes for the provider's answers (extended once the slots are known)."""
    rates = [r for r in map(runtime.rate, Channel) if r > 0]
    return LEASE_MARGIN + timedelta(seconds=count / min(rates, default=1000.0))


def claim(session: Session, runtime: Runtime, ids: list[int], now: datetime) -> list[Work]:
    """Take the deliveries IDS that are still queued and due; their messages."""
    claimed = session.execute(
        update(Delivery)
        .where(Delivery.id.in_(ids), Delivery.status == DeliveryStatus.QUEUED,
               # not before its time: a retry's backoff, or the end of quiet hours
               Delivery.next_attempt_at.is_(None) | (Delivery.next_attempt_at <= now + EARLY))
        # the last attempt's id goes: its late or replayed callbacks are not about this one
        .values(status=DeliveryStatus.SENDING, attempts=Delivery.attempts + 1, updated_at=now,
                provider_id=None, next_attempt_at=now + lease(runtime, len(ids)))
        .returning(Delivery.id)).scalars().all()
    return messages(session, runtime, claimed) if claimed else []


def messages(session: Session, runtime: Runtime, ids: Iterable[int]) -> list[Work]:
    """The messages for deliveries IDS; deliveries of stopped participants are skipped.

    Plain rows, not ORM objects, and each text rendered once per action, purpose and
    language: this runs for every batch."""
    rows = session.execute(
        select(Delivery.id, Delivery.channel, Delivery.purpose, Delivery.language,
               Delivery.action_id, Participant.phone, Participant.email, Participant.status,
               Delivery.participant_id)
        .join(Participant, Participant.id == Delivery.participant_id)
        .where(Delivery.id.in_(list(ids)))).all()
    push = active_push_targets(session, [r.participant_id for r in rows
                                         if r.channel == Channel.PUSH])
    actions: dict[int, Action] = {}
    texts: dict[tuple[int, str, str], tuple[str, str]] = {}
    work, stopped = [], []
    for (delivery_id, channel, purpose, language, action_id, phone, email, status,
         participant_id) in rows:
        if status != ParticipantStatus.VERIFIED:  # STOP is final, also for queued messages
            stopped.append((delivery_id, f"participant {status.value}"))
            runtime.metrics.delivery(channel, purpose, DeliveryStatus.SKIPPED)
            continue
        action = actions.get(action_id) or session.get(Action, action_id)
        assert action is not None
        actions[action_id] = action
        if purpose == DeliveryPurpose.ALERT and action.status == ActionStatus.ENDED:
            stopped.append((delivery_id, "action ended"))  # ended while this was in a queue
            runtime.metrics.delivery(channel, purpose, DeliveryStatus.SKIPPED)
            continue
        key = (action_id, purpose.value, language.value)
        if key not in texts:
            texts[key] = (message_text(action, purpose.value, Language(language),
                                       runtime.settings.free_number),
                          subject_text(action, purpose.value, Language(language)))
        body, subject = texts[key]
        if channel == Channel.EMAIL and purpose == DeliveryPurpose.ALERT and \
                action.kind == ActionKind.NEIGHBOURHOOD_INQUIRY:
            body = _with_reaction_link(runtime, action, Language(language), delivery_id)
        to = (email if channel == Channel.EMAIL else
              str(participant_id) if channel == Channel.PUSH else phone)
        work.append(Work(delivery_id, channel,
                         Message(delivery_id, channel, to or "", body, language.value,
                                 f"{runtime.status_callback}?delivery={delivery_id}",
                                 subject, action_id,
                                 priority_of(action, purpose),
                                 tuple(push.get(participant_id, ()))), purpose))
    for delivery_id, reason in stopped:
        session.execute(update(Delivery).where(Delivery.id == delivery_id).values(
            status=DeliveryStatus.SKIPPED, provider_error=reason))
    return work


def _with_reaction_link(runtime: Runtime, action: Action, language: Language,
                        delivery_id: int) -> str:
    """An inquiry e-mail is personal: its link opens the reaction form of this delivery."""
    settings = runtime.settings
    link = reaction_link(settings.public_url, settings.secret_key, delivery_id, language.value)
    return inquiry_text(action, language, link, settings.inquiry_link_days)
