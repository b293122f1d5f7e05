"""RQ jobs: thin, idempotent, carrying delivery ids; and the enqueueing of batches.

`send_batch` claims its deliveries (queued → sending) in one statement, so a delivery that a
duplicate job, a retry or a second worker already took is skipped; it then sends within the
sender's shared rate, all messages of the batch concurrently up to that rate, and records
every outcome in one transaction.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
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
from outbound.callbacks import apply_early
from outbound.fanout import write_outbox
from outbound.links import reaction_link
from outbound.providers import Message, ProviderError
from outbound.queues import enqueue, priority_of, schedule
from outbound.retry import fail
from outbound.runtime import OutboundRuntime, call_token, current
from outbound.templates import inquiry_text, message_text, subject_text
from outbound.throttle import CallSlots, SendWindow

MAX_IN_FLIGHT = 200
CALL_SLOT_POLL = 0.2
#: A scheduled job may fire a moment early, or on a host whose clock runs ahead.
EARLY = timedelta(seconds=2)


def write_action_outbox(action_id: int) -> dict[str, int]:
    """The job: write the outbox chunk by chunk, each chunk queued as soon as it is committed.
    Rows already there are kept, so a retried or resumed job adds only what is missing."""
    runtime = current()
    result = write_outbox(runtime.sessions, action_id, datetime.now(UTC),
                          lambda batches: enqueue(runtime.redis, batches), skip_existing=True)
    return {"deliveries": result.deliveries, "batches": len(result.batches)}


@dataclass(frozen=True)
class _Work:
    delivery_id: int
    channel: Channel
    message: Message


def send_batch(delivery_ids: list[int]) -> dict[str, int]:
    """The job: claim, send at the shared rate, record. Returns counts for RQ's result."""
    runtime = current()
    now = datetime.now(UTC)
    with runtime.sessions() as session, session.begin():
        work = _claim(session, runtime, delivery_ids, now)
    if not work:
        return {"claimed": 0}
    outcomes = runtime.run(_send_all(runtime, work))
    with runtime.sessions() as session, session.begin():
        retry = _record(session, outcomes, datetime.now(UTC))
    sent = [result for _work, result, _name in outcomes if isinstance(result, str)]
    with runtime.sessions() as session, session.begin():
        retry += apply_early(session, runtime.redis, sent, datetime.now(UTC))
    if retry:
        _schedule_retries(runtime, retry)
    counts: dict[str, int] = defaultdict(int)
    for _work, result, _name in outcomes:
        counts["sent" if isinstance(result, str) else
               "retry" if result.retryable else "failed"] += 1
    return {"claimed": len(work), **counts}


LEASE_MARGIN = timedelta(minutes=2)


def lease(runtime: OutboundRuntime, count: int) -> timedelta:
    """How long a claim holds before reclaim may take it: the batch at the slowest rate,
    plus two minutes for the provider's answers (extended once the slots are known)."""
    rates = [r for r in map(runtime.rate, Channel) if r > 0]
    return LEASE_MARGIN + timedelta(seconds=count / min(rates, default=1000.0))


def _claim(session: Session, runtime: OutboundRuntime, ids: list[int],
           now: datetime) -> list[_Work]:
    claimed = session.execute(
        update(Delivery)
        .where(Delivery.id.in_(ids), Delivery.status == DeliveryStatus.QUEUED,
               # not before its time: a retry's backoff, or the end of quiet hours
               Delivery.next_attempt_at.is_(None) | (Delivery.next_attempt_at <= now + EARLY))
        # the last attempt's id goes: its late or replayed callbacks are not about this one
        .values(status=DeliveryStatus.SENDING, attempts=Delivery.attempts + 1, updated_at=now,
                provider_id=None, next_attempt_at=now + lease(runtime, len(ids)))
        .returning(Delivery.id)).scalars().all()
    return _messages(session, runtime, claimed) if claimed else []


def _messages(session: Session, runtime: OutboundRuntime, ids: Iterable[int]) -> list[_Work]:
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
            continue
        action = actions.get(action_id) or session.get(Action, action_id)
        assert action is not None
        actions[action_id] = action
        if purpose == DeliveryPurpose.ALERT and action.status == ActionStatus.ENDED:
            stopped.append((delivery_id, "action ended"))  # ended while this was in a queue
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
        work.append(_Work(delivery_id, channel,
                          Message(delivery_id, channel, to or "", body, language.value,
                                  f"{runtime.status_callback}?delivery={delivery_id}",
                                  subject, action_id,
                                  priority_of(action, purpose),
                                  tuple(push.get(participant_id, ())))))
    for delivery_id, reason in stopped:
        session.execute(update(Delivery).where(Delivery.id == delivery_id).values(
            status=DeliveryStatus.SKIPPED, provider_error=reason))
    return work


def _with_reaction_link(runtime: OutboundRuntime, action: Action, language: Language,
                       delivery_id: int) -> str:
    """An inquiry e-mail is personal: its link opens the reaction form of this delivery."""
    settings = runtime.settings
    link = reaction_link(settings.public_url, settings.secret_key, delivery_id, language.value)
    return inquiry_text(action, language, link, settings.inquiry_link_days)


ORPHANED_AFTER = timedelta(minutes=5)


@dataclass(frozen=True)
class Reclaimed:
    """What a reclaim round did: in-flight deliveries the provider had taken (recorded) or
    not (requeued), and queued deliveries enqueued again (orphans)."""

    recorded: int = 0
    requeued: int = 0
    orphans: int = 0


def reclaim(runtime: OutboundRuntime, now: datetime, limit: int = 5000) -> Reclaimed:
    """Deliveries left in `sending` by a worker that died: ask the provider whether it took
    each one; record those it did, queue the rest again. Deliveries `queued` for long with
    no job in sight (a crash between commit and enqueue) are enqueued again too; a duplicate
    job is harmless, since claiming is atomic."""
    with runtime.sessions() as session:
        orphans = session.scalars(
            select(Delivery.id).where(Delivery.status == DeliveryStatus.QUEUED,
                                      Delivery.updated_at < now - ORPHANED_AFTER,
                                      (Delivery.next_attempt_at.is_(None))
                                      | (Delivery.next_attempt_at < now - ORPHANED_AFTER))
            .limit(limit)).all()
        schedule(runtime.redis, session, list(orphans))
    with runtime.sessions() as session, session.begin():
        stale = session.scalars(
            select(Delivery.id).where(Delivery.status == DeliveryStatus.SENDING,
                                      Delivery.next_attempt_at < now)
            .order_by(Delivery.id).limit(limit).with_for_update(skip_locked=True)).all()
        if not stale:
            return Reclaimed(orphans=len(orphans))
        work = _messages(session, runtime, stale)
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
    _schedule_retries(runtime, requeue)
    return Reclaimed(len(work) - len(requeue), len(requeue), len(orphans))


async def _find_all(runtime: OutboundRuntime, work: list[_Work],
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


async def _send_all(runtime: OutboundRuntime,
                    work: list[_Work]) -> list[tuple[_Work, str | ProviderError, str]]:
    by_channel: dict[Channel, list[_Work]] = defaultdict(list)
    for item in work:
        by_channel[item.channel].append(item)
    in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
    providers = {channel: runtime.provider(channel) for channel in by_channel}
    slots = runtime.call_slots
    tasks = []
    for channel, items in by_channel.items():
        provider = providers[channel]
        reservation = runtime.throttle.reserve(runtime.sender_key(channel),
                                               runtime.rate(channel), len(items))
        _extend_lease(runtime, [item.delivery_id for item in items],
                      reservation.slot(len(items)))
        rate = runtime.rate(channel)
        gate = _Gate(runtime.send_window, runtime.sender_key(channel), rate) if rate > 0 else None
        for index, item in enumerate(items):
            capped = slots if channel == Channel.VOICE else None
            tasks.append(_send_one(provider, item, reservation.slot(index), in_flight, capped,
                                   gate))
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for provider in {id(p): p for p in providers.values()}.values():
            if not getattr(provider, "keep_open", False):
                await provider.close()


def _extend_lease(runtime: OutboundRuntime, ids: list[int], last_slot: float) -> None:
    """Hold the claim until this batch's last slot (which other workers' reservations may
    have pushed far ahead) plus the usual margin, so reclaim never takes a message that a
    live worker is still waiting to send."""
    until = datetime.fromtimestamp(last_slot, UTC) + LEASE_MARGIN
    with runtime.sessions() as session, session.begin():
        session.execute(update(Delivery)
                        .where(Delivery.id.in_(ids), Delivery.status == DeliveryStatus.SENDING,
                               Delivery.next_attempt_at < until)
                        .values(next_attempt_at=until))


@dataclass(frozen=True)
class _Gate:
    """The sliding-second cap of one sender, checked just before each send."""

    window: SendWindow
    sender: str
    rate: float

    async def wait(self, member: str) -> None:
        await self.window.wait(self.sender, self.rate, member)


async def _send_one(provider: Any, item: _Work, at: float, in_flight: asyncio.Semaphore,
                    slots: CallSlots | None,
                    gate: _Gate | None = None) -> tuple[_Work, str | ProviderError, str]:
    delay = at - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
    token = call_token(item.delivery_id)
    while slots is not None and not slots.acquire(token):
        await asyncio.sleep(CALL_SLOT_POLL)  # the trunk is full: wait for a call to end
    async with in_flight:
        if gate is not None:  # as close to the request as it gets
            await gate.wait(f"{token}:{time.time_ns()}")
        try:
            return item, await provider.send(item.message), provider.name
        except ProviderError as error:
            if slots is not None:
                slots.release(token)
            return item, error, provider.name


def _record(session: Session, outcomes: list[tuple[_Work, str | ProviderError, str]],
            now: datetime) -> list[int]:
    """Successes in one executemany; failures (few) through the retry policy."""
    table = Delivery.__table__
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
    retry = []
    for work, result, _name in outcomes:
        if isinstance(result, str):
            continue
        delivery = session.get(Delivery, work.delivery_id)
        if delivery is None or delivery.status != DeliveryStatus.SENDING:
            continue  # a status callback already moved it on
        again = fail(session, delivery, str(result), result.retryable, now)
        if again is not None:
            session.flush()
            retry.append(again.id)
    return retry


def _schedule_retries(runtime: OutboundRuntime, delivery_ids: list[int]) -> None:
    with runtime.sessions() as session:
        schedule(runtime.redis, session, delivery_ids)
