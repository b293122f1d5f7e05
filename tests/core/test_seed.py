from collections import Counter

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.security import check_password_hash

from core.models import (
    AuditEvent,
    LocationKind,
    Municipality,
    Participant,
    ParticipantLocation,
    Postcode,
    Role,
    User,
)
from core.phone import is_fictional
from core.seed import DEMO_PASSWORD, seed_demo


def test_demo_users_one_per_role_with_the_demo_password(sessions: sessionmaker[Session]) -> None:
    seed_demo(sessions, size=0)
    with sessions() as session:
        users = session.scalars(select(User)).all()
        assert Counter(u.role for u in users) == {Role.ADMIN: 1, Role.CENTRALIST: 1,
                                                  Role.MUNICIPALITY_OFFICER: 1}
        assert all(check_password_hash(u.password_hash, DEMO_PASSWORD) for u in users)
        centralist = next(u for u in users if u.role == Role.CENTRALIST)
        assert centralist.organisation.meldkamer.code == "MN"


def test_participants_are_fictional_and_located_in_the_netherlands(
        sessions: sessionmaker[Session]) -> None:
    result = seed_demo(sessions, size=2000, seed=7)
    assert result.participants == 2000
    with sessions() as session:
        phones = session.scalars(select(Participant.phone)).all()
        assert len(phones) == len(set(phones)) == 2000
        assert all(is_fictional(p) for p in phones)
        locations = session.scalars(select(ParticipantLocation)).all()
        assert len(locations) == result.locations
        homes = [loc for loc in locations if loc.kind == "home"]
        assert len(homes) == 2000
        assert all(loc.municipality_id is not None and loc.pc4 for loc in locations)
        assert all(50.7 < loc.lat < 53.6 and 3.3 < loc.lon < 7.3 for loc in locations)
        assert session.scalar(select(func.count(AuditEvent.id))
                              .where(AuditEvent.verb == "seed_demo")) == 1


def test_participants_live_where_the_people_live(sessions: sessionmaker[Session]) -> None:
    """Homes follow the CBS population per PC4: the biggest municipalities and every safety
    region get their share (within 20 % at 20,000 homes, several standard deviations), and
    nobody lives in a PO-box range."""
    seed_demo(sessions, size=20_000, seed=11)
    with sessions() as session:
        homes = session.execute(
            select(Postcode.municipality_id, Municipality.safety_region_id, Postcode.population)
            .join(ParticipantLocation, ParticipantLocation.pc4 == Postcode.pc4)
            .join(Municipality, Municipality.id == Postcode.municipality_id)
            .where(ParticipantLocation.kind == "home")).all()
        people = dict(session.execute(select(Municipality.id, Municipality.population)).all())
        regions = dict(session.execute(
            select(Municipality.safety_region_id, func.sum(Municipality.population))
            .group_by(Municipality.safety_region_id)).all())
    assert len(homes) == 20_000
    assert all(population > 0 for _, _, population in homes)
    total = sum(people.values())
    by_municipality = Counter(municipality for municipality, _, _ in homes)
    for municipality, inhabitants in Counter(people).most_common(3):
        assert by_municipality[municipality] == pytest.approx(20_000 * inhabitants / total,
                                                              rel=0.2)
    by_region = Counter(region for _, region, _ in homes)
    assert len(regions) == 25
    for region, inhabitants in regions.items():
        assert by_region[region] == pytest.approx(20_000 * inhabitants / total, rel=0.2)


def test_seeding_again_adds_nothing_unless_reset(sessions: sessionmaker[Session]) -> None:
    seed_demo(sessions, size=300)
    again = seed_demo(sessions, size=300)
    assert again.participants == 0 and again.existing == 300
    reset = seed_demo(sessions, size=100, reset=True, seed=3)
    assert reset.participants == 100
    with sessions() as session:
        assert session.scalar(select(func.count(Participant.id))) == 100
        assert session.scalar(select(func.count(User.id))) == 3


def test_a_participant_who_signs_up_after_seeding_gets_a_new_id(
        sessions: sessionmaker[Session]) -> None:
    """The seed writes ids itself (COPY on PostgreSQL); the database's own ids go on after
    them, so the first real sign-up does not collide with a demo participant."""
    seed_demo(sessions, size=50, seed=11)
    with sessions() as session:
        person = Participant(phone="+31612340000")
        place = ParticipantLocation(participant=person, kind=LocationKind.HOME, lat=52.09,
                                    lon=5.12)
        session.add_all([person, place])
        session.commit()
        assert person.id == session.scalar(select(func.max(Participant.id)))
        assert place.id == session.scalar(select(func.max(ParticipantLocation.id)))


def test_the_seed_gives_no_deleted_participant_s_id_to_a_demo_participant(
        sessions: sessionmaker[Session]) -> None:
    """A participant who deleted their data had the highest id: the seed's own ids (and, on
    PostgreSQL, the sequence after its COPY) go on above it, never back to it."""
    with sessions() as session:
        person = Participant(phone="+31612340001")
        session.add(person)
        session.commit()
        gone = person.id
        session.delete(person)
        session.commit()
    seed_demo(sessions, size=20, seed=5)
    with sessions() as session:
        assert session.scalar(select(func.min(Participant.id))) > gone
        later = Participant(phone="+31612340002")
        session.add(later)
        session.commit()
        assert later.id == session.scalar(select(func.max(Participant.id)))
