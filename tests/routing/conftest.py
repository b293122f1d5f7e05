from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import (
    Action,
    ActionKind,
    ActionStatus,
    Channel,
    Delivery,
    DeliveryStatus,
    Meldkamer,
    Organisation,
    OrganisationKind,
    Participant,
    ParticipantStatus,
    Urgency,
)
from routing import directory, places

DATA = Path(__file__).parent / "data"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fresh_indexes() -> Iterator[None]:
    """A test that changes the reference data in its transaction must not leave an index of
    that data behind for the next (each is checked only every CHECK_EVERY seconds)."""
    yield
    directory.clear_cache()
    places.clear_cache()


def seconds_per_call(call: Callable[[], object], calls: int, rounds: int = 5) -> float:
    """The time of one CALL in the fastest of ROUNDS rounds of CALLS: a busy machine (other
    tests, a loaded CI runner) only ever adds time, so the fastest round is the one that
    measures the code (timeit's reasoning)."""
    fastest = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            call()
        fastest = min(fastest, time.perf_counter() - started)
    return fastest / calls


@pytest.fixture
def participant(db: Session) -> Callable[..., Participant]:
    """A verified participant with a fictional number."""

    def make(phone: str = "+31690001234") -> Participant:
        person = Participant(phone=phone, status=ParticipantStatus.VERIFIED, verified_at=NOW)
        db.add(person)
        db.flush()
        return person

    return make


@pytest.fixture
def sent_action(db: Session) -> Callable[..., Action]:
    """An action of meldkamer CODE whose message went out to PERSON."""

    def make(person: Participant, code: str = "OB", *, ended_ago: timedelta | None = None,
             sent_ago: timedelta = timedelta(minutes=20),
             status: DeliveryStatus = DeliveryStatus.SENT,
             channel: Channel = Channel.SMS) -> Action:
        org = db.scalar(select(Organisation).where(Organisation.name == "Politie Routing"))
        if org is None:
            org = Organisation(name="Politie Routing", kind=OrganisationKind.POLICE)
        action = Action(
            kind=ActionKind.SUSPECT, urgency=Urgency.URGENT, title_nl="Man in rode jas",
            center_lat=51.69, center_lon=5.30, radius_m=2000, organisation=org,
            meldkamer=db.scalar(select(Meldkamer).where(Meldkamer.code == code)),
            status=ActionStatus.ACTIVE if ended_ago is None else ActionStatus.ENDED,
            started_at=NOW - sent_ago - timedelta(minutes=5),
            ended_at=None if ended_ago is None else NOW - ended_ago)
        db.add(action)
        db.flush()
        db.add(Delivery(action_id=action.id, participant_id=person.id, channel=channel,
                        status=status, sent_at=NOW - sent_ago, created_at=NOW - sent_ago))
        db.flush()
        return action

    return make
