"""Neighbourhood inquiries (Burgernetmail): who answers for an organisation, the reactions that
come in through the personal links, the counts an officer follows, and the one update.

An inquiry is an action of kind neighbourhood_inquiry, created, started and ended like any
other (outbound.actions); its e-mail carries a personal link (outbound.links) to a form where
the recipient answers once. The reaction keeps only what the recipient typed, and a way back
only when they chose to leave one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.errors import BurgernetError, PhoneNumberError
from core.models import (
    Action,
    ActionKind,
    ActionStatus,
    Channel,
    Delivery,
    DeliveryPurpose,
    DeliveryStatus,
    InquiryReaction,
    Language,
    User,
)
from core.participants import EMAIL
from core.permissions import Actor, may_manage, meldkamer_for
from core.phone import normalize
from core.targeting import rank_channels
from core.texts import text_problem
from outbound.actions import TEXT_MAX, ActionInvalid
from outbound.fanout import ActionError
from outbound.feedback import REACHED, Ending, write_update
from outbound.links import LinkError, read_reaction_token
from outbound.queues import enqueue, schedule

#: The kinds an officer writes on the municipal pages.
MUNICIPAL_KINDS = (ActionKind.NEIGHBOURHOOD_INQUIRY, ActionKind.PREVENTIVE)
REACTION_MAX = 2000
CONTACT_MAX = 254
WAITING = {DeliveryStatus.QUEUED, DeliveryStatus.SENDING, DeliveryStatus.UNKNOWN}
FAILED = {DeliveryStatus.FAILED, DeliveryStatus.SKIPPED}


class InquiryClosed(BurgernetError):
    """The inquiry has ended: its form takes no more reactions."""

    error_id = "inquiry_closed"


class AlreadyReacted(BurgernetError):
    """This e-mail's link has been used: one reaction per recipient."""

    error_id = "already_reacted"


class ReactionInvalid(BurgernetError, ValueError):
    """A reaction that cannot be stored; ERRORS maps each field to one Dutch message."""

    error_id = "invalid_reaction"

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))


@dataclass(frozen=True)
class ReactionTarget:
    """What a valid personal link opens: one inquiry e-mail and its inquiry."""

    delivery_id: int
    action: Action
    language: Language


def open_reaction(session: Session, token: str, *, secret: str,
                  lifetime: timedelta) -> ReactionTarget:
    """The inquiry e-mail behind TOKEN; raises LinkError (LinkExpired) for a bad or old link,
    InquiryClosed when the inquiry has ended, AlreadyReacted when the link has been used."""
    delivery_id = read_reaction_token(secret, token, lifetime)
    delivery = session.get(Delivery, delivery_id)
    if delivery is None or delivery.purpose != DeliveryPurpose.ALERT \
            or delivery.channel != Channel.EMAIL \
            or delivery.action.kind != ActionKind.NEIGHBOURHOOD_INQUIRY:
        raise LinkError("no inquiry e-mail behind this link")
    if session.scalar(select(InquiryReaction.id)
                      .where(InquiryReaction.delivery_id == delivery_id)) is not None:
        raise AlreadyReacted(f"delivery {delivery_id} has its reaction")
    if delivery.action.status != ActionStatus.ACTIVE:
        raise InquiryClosed(f"inquiry {delivery.action_id} is {delivery.action.status.value}")
    return ReactionTarget(delivery_id, delivery.action, Language(delivery.language))


def clean_reaction(text: str | None, contact: str | None) -> tuple[str, str | None]:
    """The reaction's text and contact, checked; ReactionInvalid names every wrong field."""
    errors: dict[str, str] = {}
    text = (text or "").strip()
    contact = (contact or "").strip() or None
    if not text:
        errors["text"] = "Vul uw reactie in."
    elif len(text) > REACTION_MAX:
        errors["text"] = f"Uw reactie is te lang: hoogstens {REACTION_MAX} tekens."
    if contact is not None:
        if "@" in contact:
            if len(contact) > CONTACT_MAX or not EMAIL.match(contact):
                errors["contact"] = "Dit is geen geldig e-mailadres."
        else:
            try:
                contact = normalize(contact)
            except PhoneNumberError:
                errors["contact"] = ("Vul een geldig e-mailadres of telefoonnummer in, "
                                     "of laat dit veld leeg.")
    if errors:
        raise ReactionInvalid(errors)
    return text, contact


def submit_reaction(session: Session, target: ReactionTarget, text: str | None,
                    contact: str | None, *, now: datetime) -> InquiryReaction:
    """Store the one reaction of TARGET's e-mail; a second (also a double submit racing the
    first) raises AlreadyReacted and stores nothing. Audited without personal data."""
    text, contact = clean_reaction(text, contact)
    reaction = InquiryReaction(action_id=target.action.id, delivery_id=target.delivery_id,
                               text=text, contact=contact, received_at=now)
    try:
        with session.begin_nested():
            session.add(reaction)
            session.flush()
    except IntegrityError:
        raise AlreadyReacted(f"delivery {target.delivery_id} has its reaction") from None
    audit.record(session, "react", "inquiry_reaction", reaction.id,
                 actor=f"reaction:{target.delivery_id}", action_id=target.action.id,
                 contact_left=contact is not None)
    return reaction


def reactions(session: Session, action_id: int) -> list[InquiryReaction]:
    """An inquiry's reactions, oldest first."""
    return list(session.scalars(select(InquiryReaction)
                                .where(InquiryReaction.action_id == action_id)
                                .order_by(InquiryReaction.received_at, InquiryReaction.id)))


@dataclass
class Counts:
    """How far a municipal message got: its messages by state, reactions and updates."""

    total: int = 0
    waiting: int = 0
    held: int = 0
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    reacted: int = 0
    by_channel: Counter[Channel] | None = None
    updates: int = 0
    updates_sent: int = 0

    def channels_ranked(self) -> list[tuple[Channel, int]]:
        return rank_channels(self.by_channel or {})


def counts(session: Session, action_id: int, now: datetime) -> Counts:
    """Counts for the officer's page: sent means the provider (mail server, push service)
    took the message; delivered, that it reported it delivered; held, that it waits for the
    end of the recipient's quiet hours."""
    by_channel: Counter[Channel] = Counter()
    result = Counts(by_channel=by_channel)
    later = (Delivery.next_attempt_at > now).label("later")
    rows = session.execute(
        select(Delivery.purpose, Delivery.channel, Delivery.status, later, func.count())
        .where(Delivery.action_id == action_id)
        .group_by(Delivery.purpose, Delivery.channel, Delivery.status, later)).all()
    for purpose, channel, status, is_later, number in rows:
        if purpose == DeliveryPurpose.UPDATE:
            result.updates += number
            result.updates_sent += number if status in REACHED else 0
            continue
        if purpose != DeliveryPurpose.ALERT:
            continue
        result.total += number
        by_channel[channel] += number
        result.waiting += number if status in WAITING else 0
        result.held += number if status == DeliveryStatus.QUEUED and is_later else 0
        result.sent += number if status in REACHED else 0
        result.delivered += number if status in {DeliveryStatus.DELIVERED,
                                                 DeliveryStatus.ANSWERED} else 0
        result.failed += number if status in FAILED else 0
    result.reacted = session.scalar(select(func.count(InquiryReaction.id))
                                    .where(InquiryReaction.action_id == action_id)) or 0
    return result


def clean_update(text_nl: str | None, text_en: str | None) -> tuple[str, str | None]:
    """The update's texts, checked; ActionInvalid names every wrong field in Dutch."""
    errors: dict[str, str] = {}
    text_nl, text_en = (text_nl or "").strip(), (text_en or "").strip() or None
    if not text_nl:
        errors["update_nl"] = "Vul de tekst van het vervolgbericht in."
    for name, value in (("update_nl", text_nl), ("update_en", text_en or "")):
        if len(value) > TEXT_MAX:
            errors[name] = f"Te lang: hoogstens {TEXT_MAX} tekens."
        elif problem := text_problem(value, one_line=False):
            errors[name] = problem
    if errors:
        raise ActionInvalid(errors)
    return text_nl, text_en


def update_and_queue(sessions: sessionmaker[Session], connection: redis.Redis, action_id: int,
                     text_nl: str | None, text_en: str | None, *, now: datetime,
                     who: Actor | None = None, user: User | None = None) -> Ending:
    """Send an inquiry's one update to everyone its e-mail reached; ActionInvalid for bad
    text, ActionError when it was sent before or the inquiry has not started, NotPermitted
    when WHO may not manage it."""
    text_nl, text_en = clean_update(text_nl, text_en)
    with sessions() as session, session.begin():
        if who is not None:
            action = session.get(Action, action_id)
            if action is None:
                raise ActionError(f"no action {action_id}")
            may_manage(who, action)
            user = who.user
        ending = write_update(session, action_id, text_nl, text_en, now=now, user=user)
    enqueue(connection, ending.batches)
    with sessions() as session:
        schedule(connection, session, ending.held)
    return ending


__all__ = ["MUNICIPAL_KINDS", "ActionError", "AlreadyReacted", "Counts", "InquiryClosed",
           "ReactionInvalid", "ReactionTarget", "counts", "meldkamer_for", "open_reaction",
           "reactions", "submit_reaction", "update_and_queue"]
