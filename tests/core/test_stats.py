"""Statistics against a small dataset whose figures are worked out by hand below."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import stats
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
    Meldkamer,
    Municipality,
    Organisation,
    OrganisationKind,
    Outcome,
    Participant,
    ParticipantLocation,
    ParticipantStatus,
    Urgency,
)
from core.stats import Period, PeriodInvalid

PERIOD = Period(date(2025, 1, 1), date(2025, 6, 1))
TODAY = date(2025, 6, 15)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class Dataset:
    mine: Organisation
    other: Organisation
    actions: dict[str, Action]


def _action(session: Session, org: Organisation, kind: ActionKind, started: str | None,
            outcome: Outcome | None = None) -> Action:
    meldkamer = session.scalar(select(Meldkamer).where(Meldkamer.code == "MN"))
    action = Action(kind=kind, urgency=Urgency.URGENT, title_nl=f"{kind} {started}",
                    center_lat=52.09, center_lon=5.12, radius_m=2000, meldkamer=meldkamer,
                    organisation=org, started_at=at(started) if started else None,
                    status=ActionStatus.DRAFT if started is None else (
                        ActionStatus.ENDED if outcome else ActionStatus.ACTIVE),
                    outcome=outcome, ended_at=at(started) if outcome and started else None)
    session.add(action)
    return action


def build_dataset(session: Session, mine: Organisation, other: Organisation) -> Dataset:
    """Actions of two organisations over the turn of the year, with calls and deliveries.

    Mine, in Jan-Jun 2025 (Dutch time): January suspect x3 (arrested, not found, cancelled —
    the last started 31 Dec 23:30 UTC, already 1 January in the Netherlands), February
    vehicle (found), April missing person (active; started 31 Mar 22:30 UTC = 1 April CEST).
    Not counted: a draft, a suspect of December 2024. The other organisation: February
    AMBER (found)."""
    a = {
        "jan_arrested": _action(session, mine, ActionKind.SUSPECT, "2025-01-10 09:00",
                                Outcome.ARRESTED),
        "jan_not_found": _action(session, mine, ActionKind.SUSPECT, "2025-01-20 12:00",
                                 Outcome.NOT_FOUND),
        "jan_cancelled": _action(session, mine, ActionKind.SUSPECT, "2024-12-31 23:30",
                                 Outcome.CANCELLED),
        "feb_vehicle": _action(session, mine, ActionKind.VEHICLE, "2025-02-05 08:00",
                               Outcome.FOUND),
        "apr_missing": _action(session, mine, ActionKind.MISSING_PERSON, "2025-03-31 22:30"),
        "draft": _action(session, mine, ActionKind.SUSPECT, None),
        "dec_before": _action(session, mine, ActionKind.SUSPECT, "2024-12-15 10:00",
                              Outcome.FOUND),
        "other_amber": _action(session, other, ActionKind.AMBER, "2025-02-10 10:00",
                               Outcome.FOUND),
    }
    session.flush()
    people = [Participant(phone=f"+3169000{n:04d}", status=ParticipantStatus.VERIFIED)
              for n in range(1, 4)]
    session.add_all(people)
    session.flush()
    p1, p2, p3 = (p.id for p in people)

    def call(action: str | None, direction: CallDirection = CallDirection.INBOUND) -> None:
        session.add(CallRecord(direction=direction, transport="twilio", caller="+31690000001",
                               action_id=a[action].id if action else None))

    call("jan_arrested")
    call("jan_arrested")  # two calls, one action
    call("feb_vehicle")
    call("jan_not_found", CallDirection.OUTBOUND)  # our voice message, not a caller
    call(None)  # routed by postcode, about no action
    call("other_amber")
    call("dec_before")

    def deliver(action: str, participant: int, channel: Channel, status: DeliveryStatus,
                purpose: DeliveryPurpose = DeliveryPurpose.ALERT) -> None:
        session.add(Delivery(action_id=a[action].id, participant_id=participant,
                             channel=channel, status=status, purpose=purpose))

    deliver("jan_arrested", p1, Channel.VOICE, DeliveryStatus.ANSWERED)
    deliver("jan_arrested", p2, Channel.VOICE, DeliveryStatus.FAILED)
    deliver("jan_arrested", p3, Channel.VOICE, DeliveryStatus.VOICEMAIL)  # a machine took it
    deliver("jan_arrested", p1, Channel.SMS, DeliveryStatus.DELIVERED)
    deliver("jan_arrested", p2, Channel.SMS, DeliveryStatus.SENT)
    deliver("jan_arrested", p3, Channel.SMS, DeliveryStatus.FAILED)
    deliver("jan_arrested", p1, Channel.EMAIL, DeliveryStatus.SENT)
    deliver("jan_arrested", p2, Channel.PUSH, DeliveryStatus.SKIPPED)
    deliver("jan_arrested", p3, Channel.PUSH, DeliveryStatus.QUEUED)
    deliver("jan_arrested", p1, Channel.SMS, DeliveryStatus.DELIVERED, DeliveryPurpose.RESULT)
    deliver("other_amber", p1, Channel.SMS, DeliveryStatus.FAILED)
    deliver("dec_before", p1, Channel.SMS, DeliveryStatus.DELIVERED)
    session.flush()
    return Dataset(mine, other, a)


def organisations(session: Session) -> tuple[Organisation, Organisation]:
    mine = Organisation(name="Politie Stat A", kind=OrganisationKind.POLICE)
    other = Organisation(name="Politie Stat B", kind=OrganisationKind.POLICE)
    session.add_all([mine, other])
    session.flush()
    return mine, other


@pytest.fixture
def data(db: Session) -> Dataset:
    return build_dataset(db, *organisations(db))


def test_actions_are_counted_in_the_dutch_month_they_started(db: Session,
                                                             data: Dataset) -> None:
    months = stats.actions_per_month(db, PERIOD, data.mine.id)
    assert [m.month for m in months] == [date(2025, m, 1) for m in range(1, 7)]
    assert [m.total for m in months] == [3, 1, 0, 1, 0, 0]
    assert months[0].by_kind[ActionKind.SUSPECT] == 3
    assert months[1].by_kind[ActionKind.VEHICLE] == 1
    assert months[3].by_kind[ActionKind.MISSING_PERSON] == 1
    everyone = stats.actions_per_month(db, PERIOD)
    assert [m.total for m in everyone] == [3, 2, 0, 1, 0, 0]
    assert everyone[1].by_kind[ActionKind.AMBER] == 1


def test_success_is_the_share_of_ended_actions_found_or_arrested(db: Session,
                                                                 data: Dataset) -> None:
    rows = {r.kind: r for r in stats.success_by_kind(db, PERIOD, data.mine.id)}
    assert set(rows) == {ActionKind.SUSPECT, ActionKind.VEHICLE}  # the active one has not ended
    suspect = rows[ActionKind.SUSPECT]
    assert (suspect.ended, suspect.successful) == (3, 1)
    assert suspect.by_outcome == {Outcome.FOUND: 0, Outcome.ARRESTED: 1,
                                  Outcome.NOT_FOUND: 1, Outcome.CANCELLED: 1}
    assert suspect.rate == pytest.approx(1 / 3)
    assert rows[ActionKind.VEHICLE].rate == 1.0
    everyone = {r.kind: r for r in stats.success_by_kind(db, PERIOD)}
    assert everyone[ActionKind.AMBER].rate == 1.0


def test_an_action_counts_as_called_about_once_whatever_the_number_of_calls(
        db: Session, data: Dataset) -> None:
    *kinds, total = stats.call_share(db, PERIOD, data.mine.id)
    by_kind = {r.kind: (r.actions, r.called) for r in kinds}
    assert by_kind == {ActionKind.SUSPECT: (3, 1), ActionKind.VEHICLE: (1, 1),
                       ActionKind.MISSING_PERSON: (1, 0)}
    assert (total.kind, total.actions, total.called) == (None, 5, 2)
    assert total.rate == pytest.approx(0.4)
    assert stats.call_share(db, PERIOD)[-1].called == 3


def test_deliveries_split_by_channel_into_confirmed_unconfirmed_failed_and_other(
        db: Session, data: Dataset) -> None:
    """A voice message left on voicemail is neither answered by a person nor other."""
    rows = {r.channel: r for r in stats.delivery_by_channel(db, PERIOD, data.mine.id)}
    assert [(c, rows[c].total, rows[c].confirmed, rows[c].voicemail, rows[c].unconfirmed,
             rows[c].failed, rows[c].other) for c in Channel] == [
        (Channel.VOICE, 3, 1, 1, 0, 1, 0),
        (Channel.SMS, 4, 2, 0, 1, 1, 0),
        (Channel.EMAIL, 1, 0, 0, 1, 0, 0),
        (Channel.PUSH, 2, 0, 0, 0, 0, 2),
    ]
    assert rows[Channel.VOICE].rate == 1 / 3
    assert rows[Channel.SMS].rate == 0.5
    results = {r.channel: r.total for r in
               stats.delivery_by_channel(db, PERIOD, data.mine.id, DeliveryPurpose.RESULT)}
    assert results == {Channel.VOICE: 0, Channel.SMS: 1, Channel.EMAIL: 0, Channel.PUSH: 0}
    everyone = {r.channel: r for r in stats.delivery_by_channel(db, PERIOD)}
    assert (everyone[Channel.SMS].total, everyone[Channel.SMS].failed) == (5, 2)


def test_an_empty_period_gives_zeros_not_gaps(db: Session, data: Dataset) -> None:
    quiet = Period(date(2023, 1, 1), date(2023, 3, 1))
    figures = stats.collect(db, quiet, data.mine.id)
    assert [m.total for m in figures.months] == [0, 0, 0]
    assert figures.success == []
    assert figures.calls == [stats.CallShare(None, 0, 0)]
    assert all(r.total == 0 and r.rate is None for r in figures.delivery)


def _resident(session: Session, n: int, municipality: Municipality, status: ParticipantStatus,
              kind: LocationKind = LocationKind.HOME) -> None:
    person = Participant(phone=f"+3169100{n:04d}", status=status)
    person.locations.append(ParticipantLocation(
        kind=kind, lat=municipality.centroid_lat, lon=municipality.centroid_lon,
        municipality_id=municipality.id))
    session.add(person)


def test_participants_per_municipality_count_verified_homes_only(db: Session) -> None:
    utrecht, woerden = (db.scalar(select(Municipality).where(Municipality.code == code))
                        for code in ("GM0344", "GM0632"))
    utrecht.population, woerden.population = 1000, None
    for n in range(3):
        _resident(db, n, utrecht, ParticipantStatus.VERIFIED)
    _resident(db, 10, utrecht, ParticipantStatus.PENDING)
    _resident(db, 11, utrecht, ParticipantStatus.VERIFIED, LocationKind.WORK)
    _resident(db, 12, woerden, ParticipantStatus.VERIFIED)
    _resident(db, 13, woerden, ParticipantStatus.VERIFIED)
    db.flush()
    stopped = db.scalar(select(Participant).where(Participant.phone == "+31691000013"))
    stopped.status = ParticipantStatus.STOPPED  # the database copies it to the location
    db.flush()
    rows = {r.code: r for r in stats.participants_by_municipality(db)}
    assert len(rows) == db.scalar(select(func.count(Municipality.id)))
    assert (rows["GM0344"].participants, rows["GM0344"].coverage) == (3, 0.003)
    assert rows["GM0344"].per_thousand == 3.0 and rows["GM0344"].region == "VR09"
    assert (rows["GM0632"].participants, rows["GM0632"].coverage) == (1, None)
    assert sum(r.participants for r in rows.values()) == 4


def test_regions_sum_their_municipalities_and_know_their_inhabitants_only_when_all_do(
        db: Session) -> None:
    municipalities = stats.participants_by_municipality(db)
    regions = {r.code: r for r in stats.participants_by_region(db, municipalities)}
    assert len(regions) == 25
    assert sum(r.population or 0 for r in regions.values()) == 17_472_870
    utrecht = regions["VR09"]
    assert utrecht.name == "Utrecht" and utrecht.region is None
    assert utrecht.population == sum(r.population or 0 for r in municipalities
                                     if r.region == "VR09")
    gaps = [stats.Coverage("GM1", "Aa", 2, 100, "VR01"), stats.Coverage("GM2", "Bb", 3, None,
                                                                          "VR01"),
            stats.Coverage("GM3", "Cc", 4, 1000, "VR02")]
    vr01, vr02 = stats.participants_by_region(db, gaps)
    assert (vr01.code, vr01.participants, vr01.population) == ("VR01", 5, None)
    assert (vr02.participants, vr02.population, vr02.per_thousand) == (4, 1000, 4.0)


@pytest.mark.parametrize(("values", "breaks"), [
    ([], []),
    ([7.0], [7.0]),
    ([1.0, 1.0, 1.0], [1.0]),
    ([float(n) for n in range(1, 11)], [3.0, 5.0, 7.0, 9.0, 10.0]),
    ([0.04, 0.2, 0.26, 5.55, 12.34], [0.2, 0.26, 5.5, 12.34]),
    ([0.0, 0.0, 0.0013, 0.17, 0.1712, 0.36], [0.0, 0.0013, 0.17, 0.36]),
])
def test_class_breaks_are_quantiles_and_the_last_holds_the_maximum(
        values: list[float], breaks: list[float]) -> None:
    assert stats.class_breaks(values) == breaks
    assert all(value <= breaks[-1] for value in values)


def test_sorting_puts_unknown_coverage_last_and_extremes_fall_back_to_counts() -> None:
    rows = [stats.Coverage("GM1", "Aa", 5, None), stats.Coverage("GM2", "Bb", 10, 100),
            stats.Coverage("GM3", "Cc", 10, 1000), stats.Coverage("GM4", "Dd", 0, 50)]
    assert [r.code for r in stats.sort_coverage(rows, "coverage", True)] == \
        ["GM2", "GM3", "GM4", "GM1"]
    assert [r.code for r in stats.sort_coverage(rows, "coverage", False)] == \
        ["GM4", "GM3", "GM2", "GM1"]
    assert [r.code for r in stats.sort_coverage(rows, "name", True)] == \
        ["GM4", "GM3", "GM2", "GM1"]
    found = stats.extremes(rows, size=2)
    assert found.basis == "coverage"
    assert [r.code for r in found.top] == ["GM2", "GM3"]
    assert [r.code for r in found.bottom] == ["GM4", "GM3"]
    unknown = [stats.Coverage("GM1", "Aa", 5, None), stats.Coverage("GM2", "Bb", 9, None)]
    assert stats.extremes(unknown, size=1) == stats.Extremes([unknown[1]], [unknown[0]],
                                                              "participants")
    with pytest.raises(ValueError):
        stats.sort_coverage(rows, "population", False)


def test_the_default_period_is_the_last_twelve_months() -> None:
    period = stats.parse_period(None, "", TODAY)
    assert period == stats.default_period(TODAY) == Period(date(2024, 7, 1), date(2025, 6, 1))
    assert len(period.months) == 12
    assert stats.parse_period("", "2025-03", TODAY).first == date(2024, 4, 1)


def test_month_bounds_follow_dutch_time_across_summer_time() -> None:
    bounds = Period(date(2025, 3, 1), date(2025, 4, 1)).bounds()
    assert bounds == [at("2025-02-28 23:00"), at("2025-03-31 22:00"), at("2025-04-30 22:00")]


@pytest.mark.parametrize(("start", "end", "errors"), [
    ("2025-13", "2025-05", {"start": "Geef een maand als jjjj-mm, bijvoorbeeld 2025-03."}),
    ("maart", "2025-05", {"start": "Geef een maand als jjjj-mm, bijvoorbeeld 2025-03."}),
    ("2025-05", "2025-02", {"start": "De beginmaand ligt na de eindmaand."}),
    ("2025-01", "2025-07", {"end": "De periode kan niet na deze maand eindigen."}),
    ("1999-12", "2000-01", {"start": "Kies een maand vanaf het jaar 2000."}),
    ("2020-01", "2025-06", {"start": "Kies een periode van hoogstens 60 maanden."}),
    ("x", "y", {"start": "Geef een maand als jjjj-mm, bijvoorbeeld 2025-03.",
                "end": "Geef een maand als jjjj-mm, bijvoorbeeld 2025-03."}),
])
def test_a_wrong_period_says_what_is_wrong_in_dutch(start: str, end: str,
                                                    errors: dict[str, str]) -> None:
    with pytest.raises(PeriodInvalid) as caught:
        stats.parse_period(start, end, TODAY)
    assert caught.value.errors == errors


def test_sixty_months_are_allowed() -> None:
    assert len(stats.parse_period("2020-07", "2025-06", TODAY).months) == 60


def test_municipality_names_sort_as_in_dutch_lists() -> None:
    names = ["'s-Gravenhage", "Amsterdam", "'s-Hertogenbosch", "Zwolle", "Groningen"]
    rows = [stats.Coverage(f"GM{n}", name, 0, None) for n, name in enumerate(names)]
    assert [r.name for r in stats.sort_coverage(rows, "name", False)] == [
        "Amsterdam", "'s-Gravenhage", "Groningen", "'s-Hertogenbosch", "Zwolle"]
