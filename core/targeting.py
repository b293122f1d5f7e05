"""Who gets an action: participants in the area, on the channels the urgency and their
preferences allow, outside their quiet hours unless the message is urgent.

One function, `select_recipients`, streams (participant, channel, language); the SQL behind it
differs per database (SQLite: a box on the indexed lat/lon, then the exact test; PostgreSQL:
the PostGIS GiST index, then the same exact test), and both pass the same tests.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, time
from itertools import chain
from itertools import count as counter
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from core.db import sqlite_datetime
from core.geo import Area, Circle, Polygon
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
    "nl": ("Tijdens uw stille uren sturen wij op dat kanaal geen gewone berichten: geen "
           "buurtonderzoeken of preventieve berichten, en de uitslag van een actie pas als uw "
           "stille uren voorbij zijn. Dringende zoekacties en AMBER Alerts komen altijd door, "
           "ook 's nachts: dan telt elke minuut."),
    "en": ("During your quiet hours we send no ordinary messages on that channel: no "
           "neighbourhood inquiries or preventive messages, and the result of an action only "
           "once your quiet hours are over. Urgent search actions and AMBER Alerts always come "
           "through, also at night: then every minute counts."),
}


class Recipient(NamedTuple):
    """One message to send: a participant on one channel, in their language."""

    participant_id: int
    channel: Channel
    language: Language


LANGUAGES = {language.value: language for language in Language}


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
    return chain.from_iterable(select_recipient_batches(session, area, urgency, now))


def select_recipient_batches(session: Session, area: Area, urgency: Urgency,
                             now: datetime) -> Iterator[list[Recipient]]:
    """The same stream in lists of a few thousand, for writers that insert in bulk."""
    choose = _chooser(Urgency(urgency), now)
    for rows in _candidate_batches(session, area, Urgency(urgency), now):
        batch: list[Recipient] = []
        add = batch.append
        for pid, mask, language, quiet in rows:
            lang = LANGUAGES[language]
            for channel in choose(mask, quiet):
                add(Recipient(pid, channel, lang))
        yield batch


def preview(session: Session, area: Area, urgency: Urgency, now: datetime) -> Preview:
    """Counts by channel and municipality of what select_recipients would yield."""
    result = Preview()
    by_id: Counter[int | None] = Counter()
    choose = _chooser(Urgency(urgency), now)
    for rows in _candidate_batches(session, area, Urgency(urgency), now, municipality=True):
        for _pid, mask, _language, quiet, municipality_id in rows:
            channels = choose(mask, quiet)
            if channels:
                result.participants += 1
                by_id[municipality_id] += 1
                result.by_channel.update(channels)
    names = dict(session.execute(select(Municipality.id, Municipality.name)
                                 .where(Municipality.id.in_([i for i in by_id if i]))).all())
    for municipality_id, count in by_id.items():
        result.by_municipality[names.get(municipality_id, "buiten Nederland")] += count
    return result


def _chooser(urgency: Urgency, now: datetime) -> Callable[[int, Any], list[Channel]]:
    """Channels per participant; precomputed per channel mask when quiet hours play no part."""
    local = now.astimezone(LOCAL_TIME).time()
    by_mask = [allowed_channels(mask, None, urgency, local) for mask in range(16)]

    def choose(mask: int, quiet: Any) -> list[Channel]:
        if not quiet or quiet == "{}":
            return by_mask[mask]
        hours = json.loads(quiet) if isinstance(quiet, str) else quiet
        return allowed_channels(mask, hours, urgency, local)

    return choose


# --- the SQL, per database ------------------------------------------------------------
#
# The urgent path reads only the covering index of participant_location (which carries copies
# of status, channels and language, kept by triggers) and joins nothing; the normal path joins
# participant for the quiet hours. Rows are read through the driver's own cursor in batches
# (a server-side cursor on PostgreSQL) and de-duplicated with a bitmap of participant ids.

_CURSORS = counter()
_CURRENT = "(l.expires_at IS NULL OR l.expires_at > :now)"
_ON_SPHERE = ("sin(radians(l.lat)) * :sin_lat + "
              "cos(radians(l.lat)) * :cos_lat * cos(radians(l.lon) - :lon_rad) >= :min_cos")


def _candidate_batches(session: Session, area: Area, urgency: Urgency, now: datetime,
                       municipality: bool = False) -> Iterator[list[tuple[Any, ...]]]:
    """Batches of (participant, channel mask, language, quiet hours[, municipality]) rows,
    each participant once."""
    postgres = session.get_bind().dialect.name == "postgresql"
    where, params = _postgres_area(area) if postgres else _sqlite_area(area)
    params.update(mask=sum(c.bit for c in channels_for(urgency)),
                  now=now if postgres else sqlite_datetime(now))
    exact_in_python = isinstance(area, Polygon) and not postgres
    if quiet_hours_apply(urgency):
        columns = "l.participant_id, p.channels, p.language, p.quiet_hours"
        source = "participant_location l JOIN participant p ON p.id = l.participant_id"
        who = "p.status = 'verified' AND (p.channels & :mask) != 0"
    else:
        columns = "l.participant_id, l.channels, l.language, NULL"
        source = "participant_location l"
        who = "l.status = 'verified' AND (l.channels & :mask) != 0"
    width = 5 if municipality else 4
    if municipality:
        columns += ", l.municipality_id"
    if exact_in_python:
        columns += ", l.lon, l.lat"
    sql = f"SELECT {columns} FROM {source} WHERE {where} AND {_CURRENT} AND {who}"
    seen = bytearray((session.scalar(text("SELECT max(id) FROM participant")) or 0) + 1)
    for batch in _batches(session, sql, params, postgres):
        if exact_in_python:
            batch = _inside(area, batch, width)  # type: ignore[arg-type]
        fresh = []
        for row in batch:
            pid = row[0]
            if pid >= len(seen):
                seen.extend(bytes(pid + 1 - len(seen)))
            if not seen[pid]:
                seen[pid] = 1
                fresh.append(row if width == len(row) else row[:width])
        yield fresh


def _batches(session: Session, sql: str, params: dict[str, Any],
             postgres: bool) -> Iterator[list[tuple[Any, ...]]]:
    """Rows in batches straight from the driver, inside the session's transaction."""
    raw: Any = session.connection().connection.driver_connection
    if postgres:
        # server-side, so nothing piles up here; a unique name lets selections interleave
        cursor = raw.cursor(name=f"select_recipients_{next(_CURSORS)}")
        sql = re.sub(r"(?<!:):(\w+)", r"%(\1)s", sql)
    else:
        cursor = raw.cursor()
    try:
        cursor.execute(sql, params)
        while batch := cursor.fetchmany(BATCH):
            yield batch
    finally:
        cursor.close()


def _inside(area: Polygon, batch: list[tuple[Any, ...]], width: int) -> list[tuple[Any, ...]]:
    lon = np.fromiter((row[width] for row in batch), float, len(batch))
    lat = np.fromiter((row[width + 1] for row in batch), float, len(batch))
    hits = shapely.intersects_xy(area.geometry, lon, lat)  # inside or on the edge
    return [row for row, hit in zip(batch, hits, strict=True) if hit]


def _sphere_params(area: Circle) -> dict[str, Any]:
    return {"sin_lat": math.sin(math.radians(area.lat)),
            "cos_lat": math.cos(math.radians(area.lat)),
            "lon_rad": math.radians(area.lon), "min_cos": area.min_cosine}


def _sqlite_area(area: Area) -> tuple[str, dict[str, Any]]:
    """The box on the covering (lat, lon, ...) index, then the exact test for a circle."""
    box = area.box()
    where = "l.lat BETWEEN :lat_min AND :lat_max AND l.lon BETWEEN :lon_min AND :lon_max"
    params = {"lat_min": box.lat_min, "lat_max": box.lat_max, "lon_min": box.lon_min,
              "lon_max": box.lon_max}
    if isinstance(area, Circle):
        return f"{where} AND {_ON_SPHERE}", {**params, **_sphere_params(area)}
    return where, params


def _postgres_area(area: Area) -> tuple[str, dict[str, Any]]:
    """The GiST index on the RD New point, then the same exact test as SQLite."""
    if isinstance(area, Circle):
        # RD New's scale stays within 0.02 % here: 1 % and 100 m keep the box a superset.
        where = (f"l.geom && ST_Expand(ST_Transform(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326),"
                 f" 28992), :reach) AND {_ON_SPHERE}")
        return where, {"lat": area.lat, "lon": area.lon, "reach": area.radius_m * 1.01 + 100,
                       **_sphere_params(area)}
    shape = "ST_SetSRID(ST_GeomFromGeoJSON(:shape), 4326)"
    where = (f"l.geom && ST_Expand(ST_Transform({shape}, 28992), 100) "
             f"AND ST_Covers({shape}, ST_SetSRID(ST_MakePoint(l.lon, l.lat), 4326))")
    return where, {"shape": json.dumps(area.geojson)}
