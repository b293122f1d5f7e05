"""Demo data: one user per role and a synthetic participant population on fictional numbers.

Participants live where people live: a home is drawn per PC4 area by its inhabitants (CBS,
1 January 2021, from the reference data), and a workplace, for a quarter of them, by the same
weights within the home's safety region. PO-box ranges and codes newer than the count have no
inhabitants and get nobody. Every phone number lies in +31 69, which the Dutch numbering plan
does not allocate.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, func, select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.security import generate_password_hash

from core import audit
from core.db import bulk_insert, reserve_ids, transaction
from core.errors import DataError
from core.models import (
    Channel,
    Language,
    LocationKind,
    Meldkamer,
    Municipality,
    Organisation,
    OrganisationKind,
    Participant,
    ParticipantLocation,
    ParticipantStatus,
    Postcode,
    Role,
    SafetyRegion,
    User,
    channel_mask,
    utcnow,
)
from core.targeting import cluster_locations

DEMO_PASSWORD = "burgernet-demo"
FICTIONAL_PREFIX = "+3169"
#: +31 69 000 0000-0999 stays free for service and meldkamer numbers in examples.
FIRST_PARTICIPANT_NUMBER = 1000
CHUNK = 10_000
JITTER_M = 600.0


@dataclass(frozen=True)
class DemoUser:
    email: str
    name: str
    role: Role
    organisation: str


@dataclass(frozen=True)
class DemoOrganisation:
    name: str
    kind: OrganisationKind
    meldkamer: str | None = None
    municipality: str | None = None


DEMO_ORGANISATIONS = (
    DemoOrganisation("Politie Nederland - beheer Burgernet", OrganisationKind.POLICE),
    DemoOrganisation("Politie Midden-Nederland", OrganisationKind.POLICE, meldkamer="MN"),
    DemoOrganisation("Gemeente Utrecht", OrganisationKind.MUNICIPALITY, municipality="GM0344"),
)
DEMO_USERS = (
    DemoUser("beheer@example.org", "Demo Beheerder", Role.ADMIN, DEMO_ORGANISATIONS[0].name),
    DemoUser("centralist@example.org", "Demo Centralist", Role.CENTRALIST,
             DEMO_ORGANISATIONS[1].name),
    DemoUser("gemeente@example.org", "Demo Gemeente", Role.MUNICIPALITY_OFFICER,
             DEMO_ORGANISATIONS[2].name),
)


@dataclass
class SeedResult:
    """What seed-demo created, for printing."""

    users: list[DemoUser] = field(default_factory=list)
    participants: int = 0
    locations: int = 0
    existing: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"demo login ({DEMO_PASSWORD}): " +
                 ", ".join(f"{u.email} ({u.role.value})" for u in DEMO_USERS)]
        if self.existing and not self.participants:
            lines.append(f"{self.existing} demo participants already present "
                         "(use --reset to replace them)")
        else:
            lines.append(f"{self.participants} participants with {self.locations} locations "
                         f"in {self.seconds:.1f} s")
        return "\n".join(lines)


@dataclass(frozen=True)
class Area:
    """A residential PC4 area: where synthetic homes and workplaces are put."""

    pc4: str
    lat: float
    lon: float
    municipality_id: int
    region_id: int
    population: int


def seed_demo(sessions: sessionmaker[Session], *, size: int, seed: int = 2023,
              reset: bool = False, progress: Callable[[int], None] | None = None) -> SeedResult:
    """Create demo users (idempotently) and SIZE synthetic participants in one transaction."""
    started = time.perf_counter()
    result = SeedResult()
    with transaction(sessions) as session:
        result.users = _ensure_users(session)
        result.existing = session.scalar(
            select(func.count(Participant.id)).where(Participant.phone.like(FICTIONAL_PREFIX + "%"))
        ) or 0
        if result.existing and not reset:
            return result
        if result.existing:
            _delete_demo_participants(session)
        if size:
            areas = residential_areas(session)
            result.participants, result.locations = _insert_population(
                session, areas, size, random.Random(seed), progress or (lambda _n: None))
            cluster_locations(session)
        audit.record(session, "seed_demo", "participant", actor="cli",
                     participants=result.participants, reset=reset)
    result.seconds = time.perf_counter() - started
    return result


def _ensure_users(session: Session) -> list[DemoUser]:
    organisations = {}
    for spec in DEMO_ORGANISATIONS:
        org = session.scalar(select(Organisation).where(Organisation.name == spec.name))
        if org is None:
            org = Organisation(name=spec.name, kind=spec.kind,
                               meldkamer=_by_code(session, Meldkamer, spec.meldkamer),
                               municipality=_by_code(session, Municipality, spec.municipality))
            session.add(org)
        organisations[spec.name] = org
    password_hash = generate_password_hash(DEMO_PASSWORD)
    for user in DEMO_USERS:
        if session.scalar(select(User.id).where(User.email == user.email)) is None:
            session.add(User(email=user.email, name=user.name, role=user.role,
                             organisation=organisations[user.organisation],
                             password_hash=password_hash))
    session.flush()
    return list(DEMO_USERS)


def _by_code(session: Session, model: type[Meldkamer] | type[Municipality],
             code: str | None) -> Any:
    if code is None:
        return None
    obj = session.scalar(select(model).where(model.code == code))
    if obj is None:
        raise DataError("reference data", None,
                        f"{model.__tablename__} {code} is missing: run `burgernet load-reference`")
    return obj


def _delete_demo_participants(session: Session) -> None:
    demo = select(Participant.id).where(Participant.phone.like(FICTIONAL_PREFIX + "%"))
    session.execute(delete(ParticipantLocation).where(ParticipantLocation.participant_id.in_(demo)))
    session.execute(delete(Participant).where(Participant.phone.like(FICTIONAL_PREFIX + "%")))


def residential_areas(session: Session) -> list[Area]:
    """Every PC4 area where people live, in postcode order (so a seed is reproducible)."""
    rows = session.execute(
        select(Postcode.pc4, Postcode.lat, Postcode.lon, Postcode.municipality_id,
               Municipality.safety_region_id, Postcode.population)
        .join(Municipality, Postcode.municipality_id == Municipality.id)
        .join(SafetyRegion, Municipality.safety_region_id == SafetyRegion.id)
        .where(Postcode.population > 0)
        .order_by(Postcode.pc4)).all()
    if not rows:
        raise DataError("reference data", None,
                        "no inhabited postcodes loaded: run `burgernet load-reference` first")
    return [Area(*row) for row in rows]


class _Draw:
    """Areas drawn in proportion to their inhabitants."""

    def __init__(self, areas: list[Area]) -> None:
        self.areas = areas
        self.cumulative = list(itertools.accumulate(area.population for area in areas))

    def __call__(self, rng: random.Random) -> Area:
        return rng.choices(self.areas, cum_weights=self.cumulative)[0]


def _insert_population(session: Session, areas: list[Area], size: int, rng: random.Random,
                       progress: Callable[[int], None]) -> tuple[int, int]:
    connection = session.connection()
    participants = cast(Table, Participant.__table__)
    locations = cast(Table, ParticipantLocation.__table__)
    first_participant = reserve_ids(connection, participants, size)
    first_location = reserve_ids(connection, locations, size * 2)  # home, work
    located = 0
    for people, places in population_chunks(areas, size, rng, first_participant,
                                            first_location):
        bulk_insert(connection, participants, PARTICIPANT_COLUMNS, people)
        bulk_insert(connection, locations, LOCATION_COLUMNS, places)
        located += len(places)
        progress(len(people))
    return size, located


Rows = list[tuple[Any, ...]]


def population_chunks(areas: list[Area], size: int, rng: random.Random, first_participant: int,
                      first_location: int) -> Iterator[tuple[Rows, Rows]]:
    """SIZE synthetic participants and their locations, as rows in chunks of CHUNK."""
    by_region: dict[int, list[Area]] = defaultdict(list)
    for area in areas:
        by_region[area.region_id].append(area)
    home_in = _Draw(areas)
    work_in = {region: _Draw(inside) for region, inside in by_region.items()}
    numbers = rng.sample(range(FIRST_PARTICIPANT_NUMBER, 10_000_000), size)
    now = utcnow()
    pid, lid = first_participant, first_location
    for start in range(0, size, CHUNK):
        people: Rows = []
        places: Rows = []
        for number in numbers[start:start + CHUNK]:
            people.append(_participant(pid, number, rng, now))
            home = home_in(rng)
            places.append(_location(lid, pid, LocationKind.HOME, home, rng, now))
            lid += 1
            if rng.random() < 0.25:
                work = work_in[home.region_id](rng)
                places.append(_location(lid, pid, LocationKind.WORK, work, rng, now))
                lid += 1
            pid += 1
        yield people, places


PARTICIPANT_COLUMNS = ("id", "phone", "email", "language", "channels", "quiet_hours", "status",
                       "consent_at", "verified_at", "stopped_at", "created_at")
LOCATION_COLUMNS = ("id", "participant_id", "kind", "lat", "lon", "country", "pc4",
                    "municipality_id", "expires_at", "created_at")


def _participant(pid: int, number: int, rng: random.Random, now: datetime) -> tuple[Any, ...]:
    channels = {Channel.SMS}
    if rng.random() < 0.6:
        channels.add(Channel.VOICE)
    if rng.random() < 0.35:
        channels.add(Channel.EMAIL)
    if rng.random() < 0.45:
        channels.add(Channel.PUSH)
    roll = rng.random()
    # No pending sign-ups: the workers erase those once their code has expired.
    status = ParticipantStatus.VERIFIED if roll < 0.96 else ParticipantStatus.STOPPED
    joined = now - timedelta(days=rng.uniform(1, 3650))
    quiet = ({c.value: ["23:00", "07:00"] for c in channels} if rng.random() < 0.25 else {})
    return (
        pid,
        f"{FICTIONAL_PREFIX}{number:07d}",
        f"deelnemer{number:07d}@example.org" if Channel.EMAIL in channels else None,
        (Language.EN if rng.random() < 0.06 else Language.NL).value,
        channel_mask(channels),
        quiet,
        status.value,
        joined,
        joined,
        now if status == ParticipantStatus.STOPPED else None,
        joined,
    )


def _location(lid: int, pid: int, kind: LocationKind, area: Area, rng: random.Random,
              now: datetime) -> tuple[Any, ...]:
    lat, lon = jitter(area.lat, area.lon, rng)
    return (lid, pid, kind.value, lat, lon, "NL", area.pc4, area.municipality_id, None, now)


def jitter(lat: float, lon: float, rng: random.Random, sigma_m: float = JITTER_M
           ) -> tuple[float, float]:
    """A point scattered around (LAT, LON) with a normal spread of SIGMA_M metres."""
    dlat = rng.gauss(0.0, sigma_m) / 111_320.0
    dlon = rng.gauss(0.0, sigma_m) / (111_320.0 * math.cos(math.radians(lat)))
    return round(lat + dlat, 6), round(lon + dlon, 6)

