"""Participants a test makes itself, every property chosen here: where they live, their
channels, language, quiet hours and status.

Tests never count on the demo population (core.seed): which participants it draws, and how
many land in an area, are the seed's business and will change. A test that needs people
somewhere makes them with this module, and picks messages by what it knows of them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.orm import Session

from core.models import (
    Channel,
    Language,
    LocationKind,
    Participant,
    ParticipantStatus,
    channel_mask,
)
from core.participants import add_location

UTRECHT = (52.0907, 5.1214)
#: The quiet hours of a night owl, on each of their channels.
NIGHT = ["23:00", "07:00"]
#: Test participants get +31 69 000 0500 and up: fictional (see core.phone), and below the
#: numbers the demo seed draws from, so both can live in one database.
FIRST_NUMBER = 500
#: Every mix a test may need, taken in turn.
CHANNEL_SETS: tuple[tuple[Channel, ...], ...] = (
    (Channel.SMS,), (Channel.SMS, Channel.VOICE), (Channel.SMS, Channel.EMAIL),
    (Channel.VOICE,), (Channel.EMAIL, Channel.PUSH),
    (Channel.VOICE, Channel.SMS, Channel.EMAIL, Channel.PUSH), (Channel.PUSH,),
    (Channel.SMS, Channel.PUSH),
)


@dataclass(frozen=True)
class Neighbour:
    """One participant as a test wants them."""

    number: int
    lat: float
    lon: float
    channels: tuple[Channel, ...] = (Channel.SMS,)
    language: Language = Language.NL
    night_owl: bool = False
    status: ParticipantStatus = ParticipantStatus.VERIFIED

    @property
    def phone(self) -> str:
        return f"+3169{self.number:07d}"

    @property
    def email(self) -> str | None:
        return f"buur{self.number}@example.org" if Channel.EMAIL in self.channels else None

    @property
    def quiet_hours(self) -> dict[str, list[str]]:
        return {c.value: NIGHT for c in self.channels} if self.night_owl else {}


def spot(centre: tuple[float, float], metres: float, bearing: float) -> tuple[float, float]:
    """The point METRES from CENTRE in direction BEARING (degrees); near enough for a city."""
    lat = centre[0] + metres * math.cos(math.radians(bearing)) / 111_320
    lon = centre[1] + metres * math.sin(math.radians(bearing)) / (
        111_320 * math.cos(math.radians(centre[0])))
    return round(lat, 6), round(lon, 6)


def neighbourhood(count: int, centre: tuple[float, float] = UTRECHT, within_m: float = 2_500,
                  first: int = FIRST_NUMBER) -> list[Neighbour]:
    """COUNT verified participants spread evenly over the disc of WITHIN_M around CENTRE.

    Participant I has CHANNEL_SETS[I % 8]; every fifth (I % 5 == 4) reads English; every
    fourth (I % 4 == 1) is a night owl. So any eight in a row hold every channel set, and
    there are night owls with and without e-mail and push."""
    people = []
    for index in range(count):
        lat, lon = spot(centre, within_m * math.sqrt((index + 0.5) / count), index * 137.508)
        people.append(Neighbour(first + index, lat, lon, CHANNEL_SETS[index % len(CHANNEL_SETS)],
                                Language.EN if index % 5 == 4 else Language.NL,
                                night_owl=index % 4 == 1))
    return people


def elsewhere(neighbour: Neighbour, lat: float, lon: float, **changes: object) -> Neighbour:
    """NEIGHBOUR moved to (LAT, LON), with CHANGES."""
    return replace(neighbour, lat=lat, lon=lon, **changes)  # type: ignore[arg-type]


def add_people(session: Session, people: Iterable[Neighbour], now: datetime
               ) -> dict[str, int]:
    """Store PEOPLE, each with a home (its PC4 area and municipality found as on sign-up);
    their participant ids by phone number. The caller commits."""
    ids = {}
    for person in people:
        verified = person.status != ParticipantStatus.PENDING
        participant = Participant(
            phone=person.phone, email=person.email, language=person.language,
            channels=channel_mask(person.channels), quiet_hours=person.quiet_hours,
            status=person.status, consent_at=now, verified_at=now if verified else None,
            stopped_at=now if person.status == ParticipantStatus.STOPPED else None)
        session.add(participant)
        session.flush()
        add_location(session, participant, LocationKind.HOME, lat=person.lat, lon=person.lon,
                     now=now)
        ids[person.phone] = participant.id
    return ids
