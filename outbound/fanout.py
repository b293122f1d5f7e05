"""Starting an action: write the outbox (one Delivery per participant × channel) in bulk, then
hand it to the queues in batches.

The outbox is the truth: a batch job carries only delivery ids, and a delivery that is not
`queued` any more is skipped by whoever meets it, so enqueueing twice never sends twice. It is
written in committed chunks, each queued at once, so the first messages leave within moments
of the start, also for a national AMBER Alert.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Row, Table, select, update
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.db import bulk_insert, changed_rows
from core.errors import BurgernetError
from core.geo import Area, circle, national_area, polygon
from core.models import (
    Action,
    ActionStatus,
    Channel,
    Delivery,
    DeliveryPurpose,
    DeliveryStatus,
    User,
)
from core.permissions import Actor, may_start
from core.targeting import Preview, RecipientGroup, preview, rule_for, select_recipient_groups
from outbound.queues import Batch, priority_of, queue_name

BATCH_SIZE = 250
DELIVERY_COLUMNS = ("action_id", "participant_id", "channel", "purpose", "language", "status",
                    "attempts", "created_at", "updated_at")
#: Deliveries that quiet hours hold carry the moment they may go.
HELD_COLUMNS = (*DELIVERY_COLUMNS, "next_attempt_at")
#: The outbox table (declarative typing says only FromClause; a mapped class's is a Table).
DELIVERIES = cast(Table, Delivery.__table__)


class ActionError(BurgernetError, ValueError):
    """An action that cannot be started or ended as asked."""

    error_id = "action_error"


@dataclass
class StartResult:
    """What starting an action did."""

    action_id: int
    started: bool
    deliveries: int = 0
    batches: list[Batch] = field(default_factory=list)


def preview_action(session: Session, action: Action, now: datetime) -> Preview:
    """What starting ACTION now would write: the same area and channel rule as the start."""
    return preview(session, area_of(action), rule_for(action.kind, action.urgency), now)


def area_of(action: Action) -> Area:
    """The action's area, validated again: a draft may have been stored by older code."""
    if action.national:
        return national_area()
    if action.polygon is not None:
        return polygon(action.polygon)
    if action.center_lat is None or action.center_lon is None or action.radius_m is None:
        raise ActionError(f"action {action.id} has no area")
    return circle(action.center_lat, action.center_lon, action.radius_m)


Dispatch = Callable[[list[Batch]], object]


def start_action(sessions: sessionmaker[Session], action_id: int, *, now: datetime,
                 dispatch: Dispatch = lambda _batches: None,
                 user: User | None = None, actor: str | None = None,
                 who: Actor | None = None) -> StartResult:
    """Activate a draft action and write its outbox; a second call changes nothing.

    The outbox is written in chunks as the selection streams: each chunk is committed and
    handed to DISPATCH (which enqueues it) before the next is read, so the first messages go
    out while the rest is still being written. If this is interrupted, the action stays
    active without `outbox_done_at`, and `resume_outboxes` completes it.
    """
    if not activate_action(sessions, action_id, now=now, user=user, actor=actor, who=who):
        return StartResult(action_id, started=False)
    return write_outbox(sessions, action_id, now, dispatch)


def activate_action(sessions: sessionmaker[Session], action_id: int, *, now: datetime,
                    user: User | None = None, actor: str | None = None,
                    who: Actor | None = None) -> bool:
    """Mark a draft action active (one short transaction); False if it was not a draft.
    With WHO, only if WHO may start it as it stands (NotPermitted otherwise), and WHO is
    recorded. Its outbox is then written by `write_outbox`, here or in a worker."""
    if who is not None:
        user, actor = who.user, who.name
    with sessions() as session, session.begin():
        action = session.get(Action, action_id, with_for_update=True)
        if action is None:
            raise ActionError(f"no action {action_id}")
        if action.status != ActionStatus.DRAFT:
            return False
        area = area_of(action)  # an action without a valid area is refused before it goes live
        if who is not None:
            may_start(session, who, action, None if action.national else area)
        claimed = changed_rows(session, update(Action).where(
            Action.id == action_id, Action.status == ActionStatus.DRAFT)
            .values(status=ActionStatus.ACTIVE, started_at=now))
        if claimed != 1:
            return False
        audit.record(session, "start", "action", action_id, user=user,
                     actor=actor or (None if user else "cli"))
    return True


def write_outbox(sessions: sessionmaker[Session], action_id: int, now: datetime,
                 dispatch: Dispatch, *, skip_existing: bool = False) -> StartResult:
    """Write the outbox of an active action whose outbox is not done; with SKIP_EXISTING,
    rows written before are kept (a repeated write adds only the missing ones)."""
    with sessions() as session:
        action = session.get(Action, action_id)
        if action is None:
            raise ActionError(f"no action {action_id}")
        if action.status != ActionStatus.ACTIVE or action.outbox_done_at is not None:
            return StartResult(action_id, started=False)
        area = area_of(action)
    return _write_outbox(sessions, action_id, area, now, dispatch, skip_existing=skip_existing)


def resume_outboxes(sessions: sessionmaker[Session], now: datetime, dispatch: Dispatch,
                    older_than: timedelta = timedelta(minutes=2)) -> list[StartResult]:
    """Finish the outboxes of actions whose start was interrupted (no `outbox_done_at`)."""
    with sessions() as session:
        unfinished = session.scalars(select(Action).where(
            Action.status == ActionStatus.ACTIVE, Action.outbox_done_at.is_(None),
            Action.started_at < now - older_than)).all()
        areas = {action.id: area_of(action) for action in unfinished}
    return [_write_outbox(sessions, action_id, area, now, dispatch, skip_existing=True,
                          resumed=True) for action_id, area in areas.items()]


def _write_outbox(sessions: sessionmaker[Session], action_id: int, area: Area, now: datetime,
                  dispatch: Dispatch, *, skip_existing: bool,
                  resumed: bool = False) -> StartResult:
    result = StartResult(action_id, started=True)
    with sessions() as session:
        action = session.get(Action, action_id)
        assert action is not None
        rule, queue = rule_for(action.kind, action.urgency), priority_of(action,
                                                                        DeliveryPurpose.ALERT)
    # A plain (deferred) read transaction for the selection, so SQLite writers can commit
    # beside it; each chunk is written and committed in its own writer session.
    reader_bind = sessions.kw["bind"].execution_options(sqlite_immediate=False)
    last_id = 0
    # begin()/commit, never a rollback at the end: where the bind is one shared connection
    # (the tests), the chunks' savepoints sit inside the reader's.
    with Session(reader_bind, join_transaction_mode="create_savepoint") as reader, \
            reader.begin():
        for groups in select_recipient_groups(reader, area, rule, now):
            rows = [(action_id, pid, channel.value, DeliveryPurpose.ALERT.value,
                     group.language.value, DeliveryStatus.QUEUED.value, 0, now, now)
                    for group in groups if not group.held_until for channel in group.channels
                    for pid in group.participant_ids.tolist()]
            with sessions() as session, session.begin():
                bulk_insert(session.connection(), DELIVERIES, DELIVERY_COLUMNS, rows,
                            skip_existing=skip_existing)
                bulk_insert(session.connection(), DELIVERIES, HELD_COLUMNS,
                            _held_rows(action_id, groups, now), skip_existing=skip_existing)
                written = session.execute(
                    select(Delivery.id, Delivery.channel, Delivery.next_attempt_at)
                    .where(Delivery.action_id == action_id, Delivery.id > last_id,
                           Delivery.purpose == DeliveryPurpose.ALERT,
                           Delivery.status == DeliveryStatus.QUEUED)
                    .order_by(Delivery.id)).all()
            if not written:
                continue
            last_id = written[-1][0]
            batches = _cut(written, queue)
            dispatch(batches)
            result.deliveries += len(written)
            result.batches.extend(batches)
    with sessions() as session, session.begin():
        session.execute(update(Action).where(Action.id == action_id)
                        .values(outbox_done_at=now))
        if resumed:
            audit.record(session, "resume_outbox", "action", action_id, actor="worker",
                         deliveries=result.deliveries)
    return result


def _held_rows(action_id: int, groups: list[RecipientGroup],
               now: datetime) -> list[tuple[object, ...]]:
    """Outbox rows of the groups that quiet hours hold on some channel."""
    return [(action_id, pid, channel.value, DeliveryPurpose.ALERT.value, group.language.value,
             DeliveryStatus.QUEUED.value, 0, now, now, until)
            for group in groups if group.held_until
            for channel, until in zip(group.channels, group.held_until, strict=True)
            for pid in group.participant_ids.tolist()]


def _cut(rows: Sequence[Row[int, Channel, datetime | None]], queue: str,
         size: int = BATCH_SIZE) -> list[Batch]:
    """Batches per channel and moment; the held ones wait for the end of quiet hours."""
    by_key: dict[tuple[Channel, datetime | None], list[int]] = defaultdict(list)
    for delivery_id, channel, not_before in rows:
        by_key[(channel, not_before)].append(delivery_id)
    return [Batch(queue_name(channel, queue), tuple(ids[start:start + size]), not_before)
            for (channel, not_before), ids in by_key.items()
            for start in range(0, len(ids), size)]


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
            yield Batch(queue_name(channel, priority), tuple(ids[start:start + size]))

