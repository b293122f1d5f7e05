from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from core.models import (
    Action,
    ActionKind,
    Channel,
    Delivery,
    DeliveryPurpose,
    LocationKind,
    Meldkamer,
    Municipality,
    Organisation,
    OrganisationKind,
    Participant,
    ParticipantLocation,
    Urgency,
    channel_mask,
)


@pytest.fixture
def organisation(db: Session) -> Organisation:
    org = Organisation(name="Politie Test", kind=OrganisationKind.POLICE)
    db.add(org)
    db.flush()
    return org


@pytest.fixture
def action(db: Session, organisation: Organisation) -> Action:
    meldkamer = db.scalar(select(Meldkamer).where(Meldkamer.code == "MN"))
    action = Action(kind=ActionKind.SUSPECT, urgency=Urgency.URGENT, title_nl="Verdachte",
                    center_lat=52.09, center_lon=5.12, radius_m=2000, meldkamer=meldkamer,
                    organisation=organisation)
    db.add(action)
    db.flush()
    return action


@pytest.fixture
def participant(db: Session) -> Participant:
    person = Participant(phone="+31690001234", channels=channel_mask({Channel.SMS, Channel.VOICE}))
    person.locations.append(ParticipantLocation(kind=LocationKind.HOME, lat=52.09, lon=5.12))
    db.add(person)
    db.flush()
    return person


def test_a_delivery_is_unique_per_action_participant_channel_and_purpose(
        db: Session, action: Action, participant: Participant) -> None:
    db.add(Delivery(action=action, participant=participant, channel=Channel.SMS))
    db.add(Delivery(action=action, participant=participant, channel=Channel.SMS,
                    purpose=DeliveryPurpose.RESULT))
    db.flush()
    db.add(Delivery(action=action, participant=participant, channel=Channel.SMS))
    with pytest.raises(IntegrityError):
        db.flush()


def test_times_come_back_as_aware_utc(db: Session, action: Action) -> None:
    amsterdam = timezone(timedelta(hours=1))
    action.started_at = datetime(2026, 11, 23, 20, 0, tzinfo=amsterdam)
    db.flush()
    db.expire(action)
    assert action.started_at == datetime(2026, 11, 23, 19, 0, tzinfo=UTC)
    assert action.started_at.tzinfo is not None


def test_naive_times_are_refused(db: Session, action: Action) -> None:
    action.started_at = datetime(2026, 11, 23, 20, 0)
    with pytest.raises(StatementError, match="naive datetime"):
        db.flush()


def test_a_circle_needs_a_positive_radius(db: Session, action: Action) -> None:
    action.radius_m = 0
    with pytest.raises(IntegrityError):
        db.flush()


def test_a_circle_is_complete_or_absent(db: Session, action: Action) -> None:
    action.center_lat = None
    with pytest.raises(IntegrityError):
        db.flush()


def test_enums_refuse_unknown_values(db: Session, action: Action) -> None:
    action.kind = "robbery"  # type: ignore[assignment]
    with pytest.raises(StatementError, match="robbery"):
        db.flush()


def test_channels_are_a_bit_mask(participant: Participant) -> None:
    assert participant.has_channel(Channel.SMS) and participant.has_channel(Channel.VOICE)
    assert not participant.has_channel(Channel.EMAIL)


def test_removing_a_participant_removes_their_locations(db: Session,
                                                        participant: Participant) -> None:
    location_id = participant.locations[0].id
    db.delete(participant)
    db.flush()
    assert db.get(ParticipantLocation, location_id) is None


def test_every_municipality_reaches_a_meldkamer_through_its_region(db: Session) -> None:
    utrecht = db.scalar(select(Municipality).where(Municipality.code == "GM0344"))
    assert utrecht is not None
    assert utrecht.safety_region.code == "VR09"
    assert utrecht.safety_region.meldkamer.code == "MN"
    assert utrecht.safety_region.meldkamer.fallback is not None
