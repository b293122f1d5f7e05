"""Ending an action: everyone it reached hears how it ended, also when nothing was found;
alerts still waiting in the queue are withdrawn, so nobody is asked to look for someone
already found.

The result goes through the same outbox and queues as the alert: by SMS to those the alert
reached by voice (a result is not worth a call), on the same channel otherwise. It is not
urgent, so it waits for the end of a participant's quiet hours on that channel.

A neighbourhood inquiry or preventive message has no outcome to tell: ending one only closes
it and withdraws what is still queued. An inquiry's follow-up is its update, sent once to
everyone its e-mail reached, through the same machinery.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from core import audit
from core.db import bulk_insert, changed_rows
from core.models import (
    Action,
    ActionKind,
    ActionStatus,
    Channel,
    Delivery,
    DeliveryPurpose,
    DeliveryStatus,
    Outcome,
    Participant,
    ParticipantStatus,
    User,
)
from core.targeting import quiet_until
from outbound.fanout import ActionError, queued_batches
from outbound.queues import Batch

#: Deliveries that reached the participant: a voice message left on voicemail counts too.
REACHED = {DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.ANSWERED,
           DeliveryStatus.VOICEMAIL}
RESULT_CHANNEL = {Channel.VOICE: Channel.SMS}
#: Kinds whose end is told to everyone they reached.
RESULT_KINDS = frozenset({ActionKind.SUSPECT, ActionKind.VEHICLE, ActionKind.MISSING_PERSON,
                          ActionKind.AMBER})
COLUMNS = ("action_id", "participant_id", "channel", "purpose", "language", "status",
           "attempts", "created_at", "updated_at", "next_attempt_at")
#: The outbox table (declarative typing says only FromClause; a mapped class's is a Table).
DELIVERIES = cast(Table, Delivery.__table__)


@dataclass
class Ending:
    """What ending wrote: batches to enqueue now, and deliveries held by quiet hours."""

    results: int
    batches: list[Batch]
    held: list[int]
    withdrawn: int = 0


def end_action(session: Session, action_id: int, outcome: Outcome, text: str | None, *,
               now: datetime, user: User | None = None, actor: str | None = None) -> Ending:
    """End an active action with OUTCOME and write its result messages; after commit, enqueue
    the batches and schedule the held ones. Ending twice is refused: one result each."""
    action = session.get(Action, action_id, with_for_update=True)
    if action is None:
        raise ActionError(f"no action {action_id}")
    ended = changed_rows(session, update(Action)
                         .where(Action.id == action_id, Action.status == ActionStatus.ACTIVE)
                         .values(status=ActionStatus.ENDED, ended_at=now,
                                 outcome=Outcome(outcome), outcome_text=text or None))
    if ended != 1:
        raise ActionError(f"action {action_id} is {action.status.value}, not active")
    session.refresh(action)
    withdrawn = changed_rows(
        session, update(Delivery)
        .where(Delivery.action_id == action_id, Delivery.purpose == DeliveryPurpose.ALERT,
               Delivery.status == DeliveryStatus.QUEUED)
        .values(status=DeliveryStatus.SKIPPED, provider_error="action ended", updated_at=now,
                completed_at=now))
    rows = _result_rows(session, action, now) if action.kind in RESULT_KINDS else []
    bulk_insert(session.connection(), DELIVERIES, COLUMNS, rows)
    audit.record(session, "end", "action", action.id, user=user,
                 actor=actor or (None if user else "cli"),
                 outcome=action.outcome.value if action.outcome else None, results=len(rows),
                 withdrawn=withdrawn)
    held = session.scalars(select(Delivery.id).where(
        Delivery.action_id == action.id, Delivery.purpose == DeliveryPurpose.RESULT,
        Delivery.next_attempt_at.is_not(None))).all()
    return Ending(len(rows), list(queued_batches(session, action, DeliveryPurpose.RESULT)),
                  list(held), withdrawn)


def _result_rows(session: Session, action: Action, now: datetime) -> list[tuple[object, ...]]:
    reached = session.execute(
        select(Delivery.participant_id, Delivery.channel, Delivery.language,
               Participant.quiet_hours)
        .join(Participant, Participant.id == Delivery.participant_id)
        .where(Delivery.action_id == action.id, Delivery.purpose == DeliveryPurpose.ALERT,
               Delivery.status.in_(REACHED), Participant.status == ParticipantStatus.VERIFIED)
    ).all()
    rows: dict[tuple[int, Channel], tuple[object, ...]] = {}
    for pid, channel, language, quiet in reached:
        target = RESULT_CHANNEL.get(channel, channel)
        if (pid, target) not in rows:
            hours = json.loads(quiet) if isinstance(quiet, str) else (quiet or {})
            rows[(pid, target)] = (action.id, pid, target.value, DeliveryPurpose.RESULT.value,
                                   language.value, DeliveryStatus.QUEUED.value, 0, now, now,
                                   quiet_until(hours.get(target.value), now))
    return list(rows.values())


def write_update(session: Session, action_id: int, text_nl: str, text_en: str | None, *,
                 now: datetime, user: User | None = None) -> Ending:
    """Store an inquiry's update and write it, by e-mail, to everyone the inquiry's e-mail
    reached (held by their quiet hours like a result); after commit, enqueue the batches and
    schedule the held ones. An inquiry has one update: a second is refused."""
    action = session.get(Action, action_id, with_for_update=True)
    if action is None or action.kind != ActionKind.NEIGHBOURHOOD_INQUIRY:
        raise ActionError(f"no inquiry {action_id}")
    stored = changed_rows(session, update(Action).where(
        Action.id == action_id, Action.update_nl.is_(None),
        Action.status.in_([ActionStatus.ACTIVE, ActionStatus.ENDED]))
        .values(update_nl=text_nl, update_en=text_en or None))
    if stored != 1:
        session.refresh(action)
        raise ActionError(f"inquiry {action_id} already has its update" if action.update_nl
                          else f"inquiry {action_id} is {action.status.value}, not started")
    session.refresh(action)
    rows = _update_rows(session, action, now)
    bulk_insert(session.connection(), DELIVERIES, COLUMNS, rows)
    audit.record(session, "update", "action", action.id, user=user,
                 actor=None if user else "cli", updates=len(rows))
    held = session.scalars(select(Delivery.id).where(
        Delivery.action_id == action.id, Delivery.purpose == DeliveryPurpose.UPDATE,
        Delivery.next_attempt_at.is_not(None))).all()
    return Ending(len(rows), list(queued_batches(session, action, DeliveryPurpose.UPDATE)),
                  list(held))


def _update_rows(session: Session, action: Action, now: datetime) -> list[tuple[object, ...]]:
    reached = session.execute(
        select(Delivery.participant_id, Delivery.language, Participant.quiet_hours)
        .join(Participant, Participant.id == Delivery.participant_id)
        .where(Delivery.action_id == action.id, Delivery.purpose == DeliveryPurpose.ALERT,
               Delivery.channel == Channel.EMAIL, Delivery.status.in_(REACHED),
               Participant.status == ParticipantStatus.VERIFIED)).all()
    rows: list[tuple[object, ...]] = []
    for pid, language, quiet in reached:
        hours = json.loads(quiet) if isinstance(quiet, str) else (quiet or {})
        rows.append((action.id, pid, Channel.EMAIL.value, DeliveryPurpose.UPDATE.value,
                     language.value, DeliveryStatus.QUEUED.value, 0, now, now,
                     quiet_until(hours.get(Channel.EMAIL.value), now)))
    return rows


__all__ = ["Ending", "end_action", "quiet_until", "write_update"]
