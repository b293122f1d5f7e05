"""Statistics over a period of months: aggregate queries, grouped in the database.

An action belongs to the month (Europe/Amsterdam) in which it started; drafts that never
started are not counted. Deliveries and calls count with the action that caused them, so the
figures of one period always describe the same set of actions. Months are bucketed by a CASE
over the month boundaries computed here, which is exact in local time and reads the same on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ColumnElement, case, exists, func, literal, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from core.errors import BurgernetError
from core.models import (
    Action,
    ActionKind,
    ActionStatus,
    CallDirection,
    CallRecord,
    Channel,
    Delivery,
    DeliveryPurpose,
    DeliveryStatus,
    LocationKind,
    Municipality,
    Outcome,
    ParticipantLocation,
    ParticipantStatus,
    SafetyRegion,
)
from core.targeting import LOCAL_TIME

#: The longest period one page or export covers.
MAX_MONTHS = 60
DEFAULT_MONTHS = 12
FIRST_YEAR = 2000
SUCCESS = (Outcome.FOUND, Outcome.ARRESTED)
CONFIRMED = (DeliveryStatus.DELIVERED, DeliveryStatus.ANSWERED)
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_ARTICLE = re.compile(r"^'[st][- ]")


class PeriodInvalid(BurgernetError, ValueError):
    """A period that cannot be shown; ERRORS maps "start"/"end" to one Dutch message each."""

    error_id = "invalid_period"

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))


def _add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class Period:
    """Whole calendar months from FIRST to LAST (both the first day of their month)."""

    first: date
    last: date

    @property
    def months(self) -> list[date]:
        count = (self.last.year - self.first.year) * 12 + self.last.month - self.first.month
        return [_add_months(self.first, n) for n in range(count + 1)]

    def bounds(self) -> list[datetime]:
        """The UTC instants at which each month starts in Dutch time, and the end."""
        starts = [*self.months, _add_months(self.last, 1)]
        return [datetime(m.year, m.month, 1, tzinfo=LOCAL_TIME).astimezone(UTC) for m in starts]

    @property
    def label(self) -> str:
        return f"{self.first:%Y-%m}_{self.last:%Y-%m}"


def default_period(today: date) -> Period:
    """The last twelve months, this one included."""
    last = today.replace(day=1)
    return Period(_add_months(last, 1 - DEFAULT_MONTHS), last)


def _parse_month(text: str, name: str, errors: dict[str, str]) -> date | None:
    match = _MONTH.fullmatch(text.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        errors[name] = "Geef een maand als jjjj-mm, bijvoorbeeld 2025-03."
        return None
    if int(match.group(1)) < FIRST_YEAR:
        errors[name] = "Kies een maand vanaf het jaar 2000."
        return None
    return date(int(match.group(1)), int(match.group(2)), 1)


def parse_period(start: str | None, end: str | None, today: date) -> Period:
    """The period from two YYYY-MM texts; an empty end is this month, an empty start the
    twelve months up to the end. Raises PeriodInvalid naming every wrong field."""
    errors: dict[str, str] = {}
    this_month = today.replace(day=1)
    last = _parse_month(end, "end", errors) if end and end.strip() else this_month
    first = _parse_month(start, "start", errors) if start and start.strip() else (
        _add_months(last, 1 - DEFAULT_MONTHS) if last else None)
    if last and last > this_month:
        errors["end"] = "De periode kan niet na deze maand eindigen."
    if first and last and not errors:
        if first > last:
            errors["start"] = "De beginmaand ligt na de eindmaand."
        elif len(Period(first, last).months) > MAX_MONTHS:
            errors["start"] = f"Kies een periode van hoogstens {MAX_MONTHS} maanden."
    if errors:
        raise PeriodInvalid(errors)
    assert first is not None and last is not None
    return Period(first, last)


def _month_index(column: InstrumentedAttribute[Any], period: Period) -> ColumnElement[Any]:
    ends = period.bounds()[1:]
    return case(*((column < end, index) for index, end in enumerate(ends)))


def _started_in(period: Period, organisation_id: int | None) -> list[ColumnElement[bool]]:
    """Conditions on Action: started within PERIOD, of ORGANISATION_ID when given."""
    bounds = period.bounds()
    conditions = [Action.started_at >= bounds[0], Action.started_at < bounds[-1]]
    if organisation_id is not None:
        conditions.append(Action.organisation_id == organisation_id)
    return conditions


# --- actions per month ----------------------------------------------------------------

@dataclass(frozen=True)
class MonthCount:
    """The actions started in one month, by kind."""

    month: date
    by_kind: dict[ActionKind, int]

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())


def actions_per_month(session: Session, period: Period,
                      organisation_id: int | None = None) -> list[MonthCount]:
    """Every month of PERIOD (empty ones too) with its started actions by kind."""
    started = (select(_month_index(Action.started_at, period).label("month"), Action.kind)
               .where(*_started_in(period, organisation_id)).subquery())
    counts: dict[int, dict[ActionKind, int]] = defaultdict(dict)
    for index, kind, number in session.execute(
            select(started.c.month, started.c.kind, func.count())
            .group_by(started.c.month, started.c.kind)):
        counts[index][ActionKind(kind)] = number
    return [MonthCount(month, {kind: counts[index].get(kind, 0) for kind in ActionKind})
            for index, month in enumerate(period.months)]


# --- success by kind ------------------------------------------------------------------

@dataclass(frozen=True)
class KindSuccess:
    """The ended actions of one kind and how they ended."""

    kind: ActionKind
    by_outcome: dict[Outcome, int]
    #: Ended without an outcome recorded (should not happen; counted, never hidden).
    unknown: int = 0

    @property
    def ended(self) -> int:
        return sum(self.by_outcome.values()) + self.unknown

    @property
    def successful(self) -> int:
        return sum(self.by_outcome.get(outcome, 0) for outcome in SUCCESS)

    @property
    def rate(self) -> float | None:
        return self.successful / self.ended if self.ended else None


def success_by_kind(session: Session, period: Period,
                    organisation_id: int | None = None) -> list[KindSuccess]:
    """Per kind with ended actions: the share that ended found or arrested."""
    counts: dict[ActionKind, dict[Outcome | None, int]] = defaultdict(dict)
    for kind, outcome, number in session.execute(
            select(Action.kind, Action.outcome, func.count())
            .where(Action.status == ActionStatus.ENDED, *_started_in(period, organisation_id))
            .group_by(Action.kind, Action.outcome)):
        counts[ActionKind(kind)][Outcome(outcome) if outcome else None] = number
    return [KindSuccess(kind, {o: counts[kind].get(o, 0) for o in Outcome},
                        counts[kind].get(None, 0))
            for kind in ActionKind if kind in counts]


# --- actions with a caller ------------------------------------------------------------

@dataclass(frozen=True)
class CallShare:
    """How many actions (of one kind, or all) had at least one inbound call about them."""

    kind: ActionKind | None
    actions: int
    called: int

    @property
    def rate(self) -> float | None:
        return self.called / self.actions if self.actions else None


def call_share(session: Session, period: Period,
               organisation_id: int | None = None) -> list[CallShare]:
    """Per kind with started actions, then a total (kind None): the share of actions that at
    least one participant called the free number about."""
    called = exists().where(CallRecord.action_id == Action.id,
                            CallRecord.direction == CallDirection.INBOUND)
    rows = [CallShare(ActionKind(kind), actions, with_call) for kind, actions, with_call in
            session.execute(
                select(Action.kind, func.count(Action.id), func.count(case((called, 1))))
                .where(*_started_in(period, organisation_id))
                .group_by(Action.kind))]
    rows.sort(key=lambda row: list(ActionKind).index(row.kind))  # type: ignore[arg-type]
    total = CallShare(None, sum(r.actions for r in rows), sum(r.called for r in rows))
    return [*rows, total]


# --- participants per municipality ----------------------------------------------------

@dataclass(frozen=True)
class Coverage:
    """Verified participants living in a municipality (or a safety region), against its
    inhabitants when known; REGION is a municipality's safety region code."""

    code: str
    name: str
    participants: int
    population: int | None
    region: str | None = None

    @property
    def coverage(self) -> float | None:
        return self.participants / self.population if self.population else None

    @property
    def per_thousand(self) -> float | None:
        """The reach: participants per 1,000 inhabitants."""
        return 1000 * self.participants / self.population if self.population else None


SORT_KEYS = ("name", "participants", "coverage")


def participants_by_municipality(session: Session) -> list[Coverage]:
    """Every municipality with its verified (so not stopped) participants by home location:
    one grouped pass over participant_location, whose copied status needs no join."""
    # Constants, not parameters: a partial index on exactly these rows then serves the query.
    counted = (select(ParticipantLocation.municipality_id.label("municipality_id"),
                      func.count().label("participants"))
               .where(ParticipantLocation.kind == literal(LocationKind.HOME.value,
                                                           literal_execute=True),
                      ParticipantLocation.status == literal(ParticipantStatus.VERIFIED.value,
                                                             literal_execute=True),
                      ParticipantLocation.municipality_id.is_not(None))
               .group_by(ParticipantLocation.municipality_id).subquery())
    rows = session.execute(
        select(Municipality.code, Municipality.name, Municipality.population,
               func.coalesce(counted.c.participants, 0), SafetyRegion.code)
        .join(SafetyRegion, SafetyRegion.id == Municipality.safety_region_id)
        .outerjoin(counted, counted.c.municipality_id == Municipality.id))
    return sort_coverage([Coverage(code, name, participants, population, region)
                          for code, name, population, participants, region in rows],
                         "name", False)


def participants_by_region(session: Session, municipalities: Sequence[Coverage]
                           ) -> list[Coverage]:
    """The municipality figures summed per safety region, in region code order; a region's
    inhabitants are unknown when any of its municipalities' are."""
    names = dict(session.execute(select(SafetyRegion.code, SafetyRegion.name)).all())
    participants: dict[str, int] = defaultdict(int)
    population: dict[str, int | None] = {}
    for row in municipalities:
        if row.region is None:
            continue
        participants[row.region] += row.participants
        known = population.get(row.region, 0)
        population[row.region] = (None if known is None or row.population is None
                                  else known + row.population)
    return [Coverage(code, names[code], participants[code], population[code])
            for code in sorted(population)]


def class_breaks(values: Sequence[float], classes: int = 5) -> list[float]:
    """Upper bounds of up to CLASSES groups of about as many values each (quantiles), for a
    choropleth: rounded to two significant digits, without repeats, the last one the
    maximum."""
    if not values:
        return []
    ordered = sorted(values)
    cuts = [ordered[min(len(ordered) - 1, (len(ordered) * step) // classes)]
            for step in range(1, classes)]
    bounds = sorted({significant(value) for value in [*cuts, ordered[-1]]})
    bounds[-1] = max(bounds[-1], ordered[-1])
    return bounds


def significant(value: float, digits: int = 2) -> float:
    """VALUE rounded to DIGITS significant digits (12.34 → 12, 0.01234 → 0.012)."""
    if value == 0:
        return 0.0
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def dutch_name_key(name: str) -> str:
    """Alphabetical as in Dutch lists: 's-Gravenhage under G, 't Zandt under Z."""
    return _ARTICLE.sub("", name).casefold()


def sort_coverage(rows: Iterable[Coverage], key: str, descending: bool) -> list[Coverage]:
    """ROWS sorted by KEY (one of SORT_KEYS); unknown coverage always last."""
    if key not in SORT_KEYS:
        raise ValueError(f"unknown sort key {key!r}")
    rows = sorted(rows, key=lambda row: (dutch_name_key(row.name), row.code))
    if key == "name":
        return rows[::-1] if descending else rows
    known = [row for row in rows if getattr(row, key) is not None]
    unknown = [row for row in rows if getattr(row, key) is None]
    return sorted(known, key=lambda row: getattr(row, key), reverse=descending) + unknown


@dataclass(frozen=True)
class Extremes:
    """The best and worst covered municipalities; by participants when no population is
    known (BASIS says which)."""

    top: list[Coverage]
    bottom: list[Coverage]
    basis: str


def extremes(rows: Sequence[Coverage], size: int = 5) -> Extremes:
    basis = "coverage" if any(row.coverage is not None for row in rows) else "participants"
    ranked = sort_coverage(rows, basis, descending=True)
    ranked = [row for row in ranked if getattr(row, basis) is not None]
    return Extremes(ranked[:size], ranked[::-1][:size], basis)


# --- delivery by channel --------------------------------------------------------------

@dataclass(frozen=True)
class ChannelDelivery:
    """The messages of one channel by how they ended up.

    Confirmed: the carrier reported it delivered, or a person answered the call. Voicemail:
    an answering machine took the call and the message was left after its beep (reached, but
    nobody heard it yet). Unconfirmed: the provider took it but no receipt exists (e-mail and
    push never get one). Other: skipped or still on its way."""

    channel: Channel
    by_status: dict[DeliveryStatus, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def confirmed(self) -> int:
        return sum(self.by_status.get(status, 0) for status in CONFIRMED)

    @property
    def voicemail(self) -> int:
        return self.by_status.get(DeliveryStatus.VOICEMAIL, 0)

    @property
    def unconfirmed(self) -> int:
        return self.by_status.get(DeliveryStatus.SENT, 0)

    @property
    def failed(self) -> int:
        return self.by_status.get(DeliveryStatus.FAILED, 0)

    @property
    def other(self) -> int:
        return self.total - self.confirmed - self.voicemail - self.unconfirmed - self.failed

    @property
    def rate(self) -> float | None:
        return self.confirmed / self.total if self.total else None


def delivery_by_channel(session: Session, period: Period, organisation_id: int | None = None,
                        purpose: DeliveryPurpose | None = None) -> list[ChannelDelivery]:
    """Per channel, the deliveries (alert, result and update, or one PURPOSE) of the actions
    started in PERIOD, by status."""
    conditions = _started_in(period, organisation_id)
    if purpose is not None:
        conditions.append(Delivery.purpose == purpose)
    counts: dict[Channel, dict[DeliveryStatus, int]] = defaultdict(dict)
    for channel, status, number in session.execute(
            select(Delivery.channel, Delivery.status, func.count())
            .join(Action, Action.id == Delivery.action_id)
            .where(*conditions)
            .group_by(Delivery.channel, Delivery.status)):
        counts[Channel(channel)][DeliveryStatus(status)] = number
    return [ChannelDelivery(channel, counts.get(channel, {})) for channel in Channel]


@dataclass(frozen=True)
class Statistics:
    """Everything the statistics page shows for one period and scope."""

    period: Period
    months: list[MonthCount]
    success: list[KindSuccess]
    calls: list[CallShare]
    municipalities: list[Coverage]
    regions: list[Coverage]
    delivery: list[ChannelDelivery]


def collect(session: Session, period: Period, organisation_id: int | None = None,
            purpose: DeliveryPurpose | None = None) -> Statistics:
    """All figures for PERIOD: action figures of ORGANISATION_ID (None: all organisations);
    participant figures always for the whole country (they are aggregate)."""
    municipalities = participants_by_municipality(session)
    return Statistics(period, actions_per_month(session, period, organisation_id),
                      success_by_kind(session, period, organisation_id),
                      call_share(session, period, organisation_id),
                      municipalities, participants_by_region(session, municipalities),
                      delivery_by_channel(session, period, organisation_id, purpose))
