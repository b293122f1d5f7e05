"""Who gets an action: participants in the area, on the channels the urgency and their
preferences allow, outside their quiet hours unless the message is urgent.

One function, `select_recipients`, streams (participant, channel, language); the SQL behind it
differs per database (SQLite: a box on the indexed lat/lon, then the exact test; PostgreSQL:
the PostGIS GiST index, then the same exact test), and both pass the same tests.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from core.db import sqlite_datetime
from core.geo import Area, Circle, Polygon, unit_vector
from core.models import Channel, Language, Municipality, Urgency

LOCAL_TIME = ZoneInfo("Europe/Amsterdam")
BATCH = 5000

#: Urgent messages (search actions, AMBER) must arrive now: voice first. The rest can wait
#: for a quieter channel and never rings a phone.
CHANNELS_BY_URGENCY: dict[Urgency, tuple[Channel, ...]] = {
    Urgency.URGENT: (Channel.VOICE, Channel.SMS, Channel.PUSH),
    Urgency.NORMAL: (Channel.EMAIL, Channel.PUSH, Channel.SMS),
}

#: The rule as participants read it in their preferences.
QUIET_HOURS_RULE = {
    "nl": ("Tijdens uw stille uren ontvangt u geen gewone berichten (buurtonderzoek, "
           "preventieve berichten en uitslagen van acties); die wachten niet, ze vervallen "
           "voor dat kanaal. Dringende zoekacties en AMBER Alerts komen altijd door, ook "
           "'s nachts: dan telt elke minuut."),
    "en": ("During your quiet hours you receive no ordinary messages (neighbourhood "
           "inquiries, preventive messages and results of actions) on that channel. Urgent "
           "search actions and AMBER Alerts always come through, also at night: then every "
           "minute counts."),
}


@dataclass(frozen=True)
class Recipient:
    """One message to send: a participant on one channel, in their language."""

    participant_id: int
    channel: Channel
    language: Language
    municipality_id: int | None


@dataclass
class Preview:
    """What an action would reach, counted without writing anything."""

    participants: int = 0
    by_channel: Counter[Channel] = field(default_factory=Counter)
    by_municipality: Counter[str] = field(default_factory=Counter)

    @property
    def messages(self) -> int:
        return sum(self.by_channel.values())


def channels_for(urgency: Urgency) -> tuple[Channel, ...]:
    """The channels a message of this urgency may use, in order of preference."""
    return CHANNELS_BY_URGENCY[Urgency(urgency)]


def quiet_hours_apply(urgency: Urgency) -> bool:
    """Quiet hours hold for everything that is not urgent."""
    return Urgency(urgency) != Urgency.URGENT


def in_window(window: list[str] | tuple[str, str], moment: time) -> bool:
    """Whether MOMENT (local time) falls in a daily window [start, end), which may span midnight."""
    start, end = (time.fromisoformat(value) for value in window)
    if start <= end:
        return start <= moment < end
    return moment >= start or moment < end


def allowed_channels(mask: int, quiet_hours: dict[str, Any] | None, urgency: Urgency,
                     local: time) -> list[Channel]:
    """The channels to use for one participant, given their choices and the time of day."""
    chosen = [c for c in channels_for(urgency) if mask & c.bit]
    if quiet_hours and quiet_hours_apply(urgency):
        chosen = [c for c in chosen if not (c.value in quiet_hours
                                            and in_window(quiet_hours[c.value], local))]
    return chosen


def select_recipients(session: Session, area: Area, urgency: Urgency,
                      now: datetime) -> Iterator[Recipient]:
    """Stream every (participant, channel, language) to reach in AREA at NOW.

    Only verified participants; each once per channel however many of their locations lie in
    the area; expired current locations do not count. Rows come from the database in batches.
    """
    urgency = Urgency(urgency)
    local = now.astimezone(LOCAL_TIME).time()
    languages = {language.value: language for language in Language}
    for pid, mask, language, quiet, municipality_id in _candidates(session, area, urgency, now):
        if isinstance(quiet, str):
            quiet = json.loads(quiet) if quiet != "{}" else None
        for channel in allowed_channels(mask, quiet, urgency, local):
            yield Recipient(pid, channel, languages[language], municipality_id)


def preview(session: Session, area: Area, urgency: Urgency, now: datetime) -> Preview:
    """Counts by channel and municipality of what select_recipients would yield."""
    result = Preview()
    by_id: Counter[int | None] = Counter()
    seen_last = None
    for recipient in select_recipients(session, area, urgency, now):
        result.by_channel[recipient.channel] += 1
        if recipient.participant_id != seen_last:
            seen_last = recipient.participant_id
            result.participants += 1
            by_id[recipient.municipality_id] += 1
    names = dict(session.execute(select(Municipality.id, Municipality.name)
                                 .where(Municipality.id.in_([i for i in by_id if i]))).all())
    for municipality_id, count in by_id.items():
        result.by_municipality[names.get(municipality_id, "buiten Nederland")] += count
    return result


# --- the SQL, per database ------------------------------------------------------------

Row = tuple[int, int, str, Any, int | None]

_PARTICIPANT = """
SELECT p.id, p.channels, p.language, p.quiet_hours, hit.municipality_id
FROM ({hits}) AS hit JOIN participant p ON p.id = hit.participant_id
WHERE p.status = 'verified' AND (p.channels & :mask) != 0
"""
_ON_SPHERE = ("cos(radians(lat)) * cos(radians(lon)) * :cx + "
              "cos(radians(lat)) * sin(radians(lon)) * :cy + "
              "sin(radians(lat)) * :cz >= :min_cos")
_CURRENT = "(expires_at IS NULL OR expires_at > :now)"


def _candidates(session: Session, area: Area, urgency: Urgency, now: datetime) -> Iterator[Row]:
    mask = sum(c.bit for c in channels_for(urgency))
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        sql, params = _postgres(area)
    elif isinstance(area, Circle):
        sql, params = _sqlite_circle(area)
    else:
        yield from _sqlite_polygon(session, area, mask, now)
        return
    params.update(mask=mask, now=now if dialect == "postgresql" else _sqlite_time(now))
    result = session.execute(text(_PARTICIPANT.format(hits=sql)), params,
                             execution_options={"stream_results": True, "yield_per": BATCH})
    for partition in result.partitions():
        yield from partition  # type: ignore[misc]


def _circle_params(area: Circle) -> dict[str, Any]:
    cx, cy, cz = unit_vector(area.lat, area.lon)
    return {"cx": cx, "cy": cy, "cz": cz, "min_cos": area.min_cosine}


def _sqlite_time(now: datetime) -> str:
    return sqlite_datetime(now) or ""


def _sqlite_circle(area: Circle) -> tuple[str, dict[str, Any]]:
    box = area.box()
    # SQLite returns the other columns of the row that gave min(id): the oldest location.
    hits = f"""
        SELECT participant_id, municipality_id, min(id) FROM participant_location
        WHERE lat BETWEEN :lat_min AND :lat_max AND lon BETWEEN :lon_min AND :lon_max
          AND {_CURRENT} AND {_ON_SPHERE}
        GROUP BY participant_id"""
    return hits, {"lat_min": box.lat_min, "lat_max": box.lat_max, "lon_min": box.lon_min,
                  "lon_max": box.lon_max, **_circle_params(area)}


def _sqlite_polygon(session: Session, area: Polygon, mask: int, now: datetime) -> Iterator[Row]:
    """Box on the index in SQL, then shapely's vectorised point-in-polygon on each batch."""
    box = area.box()
    sql = f"""
        SELECT l.participant_id, p.channels, p.language, p.quiet_hours, l.municipality_id,
               l.lon, l.lat
        FROM participant_location l JOIN participant p ON p.id = l.participant_id
        WHERE l.lat BETWEEN :lat_min AND :lat_max AND l.lon BETWEEN :lon_min AND :lon_max
          AND {_CURRENT.replace('expires_at', 'l.expires_at')}
          AND p.status = 'verified' AND (p.channels & :mask) != 0
        ORDER BY l.participant_id, l.id"""
    params = {"lat_min": box.lat_min, "lat_max": box.lat_max, "lon_min": box.lon_min,
              "lon_max": box.lon_max, "mask": mask, "now": _sqlite_time(now)}
    geometry = area.geometry
    shapely.prepare(geometry)
    last = None
    result = session.execute(text(sql), params, execution_options={"yield_per": BATCH})
    for partition in result.partitions():
        lon = np.fromiter((row[5] for row in partition), float, len(partition))
        lat = np.fromiter((row[6] for row in partition), float, len(partition))
        inside = shapely.intersects_xy(geometry, lon, lat)  # inside or on the edge
        for row, hit in zip(partition, inside, strict=True):
            if hit and row[0] != last:
                last = row[0]
                yield row[0], row[1], row[2], row[3], row[4]


def _postgres(area: Area) -> tuple[str, dict[str, Any]]:
    if isinstance(area, Circle):
        where = f"""geom && ST_Expand(ST_Transform(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326),
                                                  28992), :reach)
                    AND {_ON_SPHERE}"""
        # RD New's scale stays within 0.02 % here: 1 % and 100 m keep the box a superset.
        params = {"lat": area.lat, "lon": area.lon, "reach": area.radius_m * 1.01 + 100,
                  **_circle_params(area)}
    else:
        where = """geom && ST_Expand(ST_Transform(ST_SetSRID(ST_GeomFromGeoJSON(:shape), 4326),
                                                 28992), 100)
                   AND ST_Covers(ST_SetSRID(ST_GeomFromGeoJSON(:shape), 4326),
                                 ST_SetSRID(ST_MakePoint(lon, lat), 4326))"""
        params = {"shape": json.dumps(area.geojson)}
    hits = f"""
        SELECT DISTINCT ON (participant_id) participant_id, municipality_id
        FROM participant_location WHERE {where} AND {_CURRENT}
        ORDER BY participant_id, id"""
    return hits, params
