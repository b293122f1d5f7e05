"""Claiming a batch's deliveries (queued → sending, in one statement) and building their
messages; the claims' short leases, renewed while their worker lives.

A delivery that a duplicate job, a retry or a second worker already took is not `queued` any
more, so the claim skips it: enqueueing twice never sends twice. A claim holds for a lease of
LEASE seconds, which a thread of the worker renews every RENEW_EVERY seconds while the batch
runs (`Lease`); once a lease has run out, reclaim (`outbound.reclaim`) takes the delivery
back, so a dead worker's deliveries go out again within seconds. A claim is known by its
delivery and attempt: a renewal, or an outcome, of an attempt that reclaim took back changes
nothing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

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

log = logging.getLogger("burgernet.claim")

#: A scheduled job may fire a moment early, or on a host whose clock runs ahead.
EARLY = timedelta(seconds=2)
#: How long a claim holds unless renewed: past it, reclaim may take the delivery back.
LEASE = timedelta(seconds=8)
#: How often the worker renews the claims of the batch it works on.
RENEW_EVERY = 2.0
#: A claim is used (its message handed to the provider) only while its last renewal began at
#: most LEASE - GUARD ago: the guard covers the clocks of two hosts and the moment between the
#: check and the request.
GUARD = 3.0
#: How often a send that found its claim not renewed lately looks again.
LEASE_POLL = 0.1


@dataclass(frozen=True)
class Work:
    """One claimed delivery and the message that carries it."""

    delivery_id: int
    channel: Channel
    message: Message
    purpose: DeliveryPurpose
    #: The delivery's attempt this claim is (its `attempts` once claimed).
    attempt: int = 0


def claim(session: Session, runtime: Runtime, ids: list[int], now: datetime) -> list[Work]:
    """Take the deliveries IDS that are still queued and due; their messages."""
    claimed = session.execute(
        update(Delivery)
        .where(Delivery.id.in_(ids), Delivery.status == DeliveryStatus.QUEUED,
               # not before its time: a retry's backoff, or the end of quiet hours
               Delivery.next_attempt_at.is_(None) | (Delivery.next_attempt_at <= now + EARLY))
        # the last attempt's id goes: its late or replayed callbacks are not about this one
        .values(status=DeliveryStatus.SENDING, attempts=Delivery.attempts + 1, updated_at=now,
                provider_id=None, next_attempt_at=now + LEASE)
        .returning(Delivery.id)).scalars().all()
    return messages(session, runtime, claimed) if claimed else []


def messages(session: Session, runtime: Runtime, ids: Iterable[int]) -> list[Work]:
    """The messages for deliveries IDS; deliveries of stopped participants are skipped.

    Plain rows, not ORM objects, and each text rendered once per action, purpose and
    language: this runs for every batch."""
    rows = session.execute(
        select(Delivery.id, Delivery.channel, Delivery.purpose, Delivery.language,
               Delivery.action_id, Participant.phone, Participant.email, Participant.status,
               Delivery.participant_id, Delivery.attempts)
        .join(Participant, Participant.id == Delivery.participant_id)
        .where(Delivery.id.in_(list(ids)))).all()
    push = active_push_targets(session, [r.participant_id for r in rows
                                         if r.channel == Channel.PUSH])
    actions: dict[int, Action] = {}
    texts: dict[tuple[int, str, str], tuple[str, str]] = {}
    work, stopped = [], []
    for (delivery_id, channel, purpose, language, action_id, phone, email, status,
         participant_id, attempt) in rows:
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
                                 tuple(push.get(participant_id, ()))), purpose, attempt))
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


class Lease:
    """The claims of one batch, renewed by a thread of their own every RENEW_EVERY seconds
    while the batch runs: neither a busy event loop nor a long wait for rate slots lets them
    lapse. A claim the renewal no longer finds (reclaim took it back after a stall) is lost
    and never used; while renewals fail, sends wait (`wait`) rather than go out on a claim
    that may have run out."""

    def __init__(self, writer: sessionmaker[Session], clock: Callable[[], datetime],
                 work: Iterable[Work], claimed: datetime) -> None:
        """WORK, claimed with a lease from CLAIMED on (the `now` the claim was given)."""
        self._writer = writer
        self._clock = clock
        self._held = {item.delivery_id: item.attempt for item in work}
        self._lock = threading.Lock()
        since = (clock() - claimed).total_seconds()  # a claim may have waited for a lock
        self._fresh_until = time.monotonic() - since + LEASE.total_seconds() - GUARD
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_forever, daemon=True, name="lease")

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(self, _type: type[BaseException] | None, _exc: BaseException | None,
                 _tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    def holds(self, delivery_id: int) -> bool | None:
        """True: the claim may be used now; False: it is lost (or the batch is over); None:
        not renewed lately."""
        with self._lock:
            if delivery_id not in self._held or self._stop.is_set():
                return False
            return True if time.monotonic() < self._fresh_until else None

    async def wait(self, delivery_id: int) -> bool:
        """Whether the claim of DELIVERY_ID may be used, once that is known."""
        while (held := self.holds(delivery_id)) is None:
            await asyncio.sleep(LEASE_POLL)
        return held

    def renew(self) -> None:
        """Push every held claim's lease LEASE ahead, in one short transaction."""
        began = time.monotonic()
        until = self._clock() + LEASE
        with self._lock:
            by_attempt: dict[int, list[int]] = defaultdict(list)
            for delivery_id, attempt in self._held.items():
                by_attempt[attempt].append(delivery_id)
        if not by_attempt:
            return
        kept: set[int] = set()
        try:
            with self._writer() as session, session.begin():
                for attempt, ids in by_attempt.items():
                    kept.update(session.execute(
                        update(Delivery)
                        .where(Delivery.id.in_(ids), Delivery.status == DeliveryStatus.SENDING,
                               Delivery.attempts == attempt)
                        # updated_at stays the attempt's start: a look-up searches from there
                        .values(next_attempt_at=until, updated_at=Delivery.updated_at)
                        .returning(Delivery.id)).scalars())
        except SQLAlchemyError:
            log.warning("could not renew the lease of %d deliveries", len(self._held),
                        exc_info=True)
            return
        with self._lock:
            lost = [i for ids in by_attempt.values() for i in ids if i not in kept]
            for delivery_id in lost:
                self._held.pop(delivery_id, None)
            self._fresh_until = began + LEASE.total_seconds() - GUARD
        if lost:
            log.warning("%d claims were taken back while their batch ran; not sending them",
                        len(lost))

    def _renew_forever(self) -> None:
        while not self._stop.wait(RENEW_EVERY):
            self.renew()
