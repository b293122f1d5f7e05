"""Who gets an action: participants in the area, on the channels the action's kind and
urgency and their own preferences allow; a non-urgent message waits for the end of a
channel's quiet hours.

One function, `select_recipients`, streams (participant, channel, language); the SQL behind it
differs per database (SQLite: per column of longitude a range of latitude on a covering index;
PostgreSQL: per column the PostGIS GiST index; then the same exact test on the circle's rim),
and both pass the same tests.
`select_recipient_groups` is the same stream in columns (arrays of participant ids per
channels and language), for writers that insert in bulk.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, time, timedelta
from itertools import chain
from itertools import count as counter
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import shapely
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from core.db import sqlite_datetime
from core.geo import Area, Circle, Polygon, gaussian_radius
from core.models import ActionKind, Channel, Language, Municipality, Urgency

LOCAL_TIME = ZoneInfo("Europe/Amsterdam")
#: At most this many participants per batch of the stream.
BATCH = 5000

#: Urgent messages (search actions, AMBER) must arrive now: voice first. The rest can wait
#: for a quieter channel and never rings a phone.
CHANNELS_BY_URGENCY: dict[Urgency, tuple[Channel, ...]] = {
    Urgency.URGENT: (Channel.VOICE, Channel.SMS, Channel.PUSH),
    Urgency.NORMAL: (Channel.EMAIL, Channel.PUSH, Channel.SMS),
}

#: The rule as participants read it in their preferences.
QUIET_HOURS_RULE = {
    "nl": ("Tijdens uw stille uren sturen wij op dat kanaal geen gewone berichten: "
           "buurtonderzoeken, preventieve berichten en de uitslag van een actie krijgt u pas "
           "als uw stille uren voorbij zijn. Dringende zoekacties en AMBER Alerts komen altijd "
           "door, ook 's nachts: dan telt elke minuut."),
    "en": ("During your quiet hours we send no ordinary messages on that channel: "
           "neighbourhood inquiries, preventive messages and the result of an action reach "
           "you once your quiet hours are over. Urgent search actions and AMBER Alerts always "
           "come through, also at night: then every minute counts."),
}


@dataclass(frozen=True)
class ChannelRule:
    """The channels a kind of message may use (in order of preference) and whether quiet
    hours hold it: a message held on a channel goes when that channel's quiet hours end."""

    channels: tuple[Channel, ...]
    quiet_hours: bool
    #: Leave out the e-mail channel of participants without an address. It needs the
    #: participant row, so only rules that read it anyway (quiet hours) ask for it;
    #: registration already refuses the e-mail channel without an address.
    needs_address: bool = False

    @property
    def mask(self) -> int:
        return sum(c.bit for c in self.channels)


#: Kinds with channels of their own. An AMBER Alert goes on every channel the participant
#: chose; a neighbourhood inquiry asks for an answer through a personal e-mail link; a
#: preventive message is information that never rings a phone or costs an SMS.
RULES_BY_KIND: dict[ActionKind, ChannelRule] = {
    ActionKind.AMBER: ChannelRule((Channel.VOICE, Channel.SMS, Channel.EMAIL, Channel.PUSH),
                                  quiet_hours=False),
    ActionKind.NEIGHBOURHOOD_INQUIRY: ChannelRule((Channel.EMAIL,), quiet_hours=True,
                                                  needs_address=True),
    ActionKind.PREVENTIVE: ChannelRule((Channel.EMAIL, Channel.PUSH), quiet_hours=True,
                                       needs_address=True),
}


def rule_for(kind: ActionKind | str | None, urgency: Urgency | str) -> ChannelRule:
    """The channel rule of an action: by kind where the kind has one, else by urgency.
    Urgent messages are never held, whatever their kind."""
    urgent = Urgency(urgency) == Urgency.URGENT
    rule = RULES_BY_KIND.get(ActionKind(kind)) if kind is not None else None
    if rule is None:
        return ChannelRule(CHANNELS_BY_URGENCY[Urgency(urgency)], quiet_hours=not urgent)
    return replace(rule, quiet_hours=False) if urgent and rule.quiet_hours else rule


def as_rule(rule: ChannelRule | Urgency | str) -> ChannelRule:
    """RULE itself, or the rule of an urgency (for callers that know no kind)."""
    return rule if isinstance(rule, ChannelRule) else rule_for(None, rule)

Ids = npt.NDArray[np.int64]


class Recipient(NamedTuple):
    """One message to send: a participant on one channel, in their language."""

    participant_id: int
    channel: Channel
    language: Language


@dataclass(frozen=True, eq=False)
class RecipientGroup:
    """Participants who get the same channels in the same language: a piece of the stream in
    columns. Each participant id occurs once in a whole selection, and is one recipient per
    channel. HELD_UNTIL, when given, says per channel (same order) until when quiet hours
    hold the message (None: it may go now)."""

    channels: tuple[Channel, ...]
    language: Language
    participant_ids: Ids
    held_until: tuple[datetime | None, ...] = ()

    @property
    def recipients(self) -> int:
        return len(self.participant_ids) * len(self.channels)


@dataclass
class Preview:
    """What an action would reach, counted without writing anything. HELD counts, per
    channel, the messages that wait for the end of quiet hours (they are in BY_CHANNEL too)."""

    participants: int = 0
    by_channel: Counter[Channel] = field(default_factory=Counter)
    by_municipality: Counter[str] = field(default_factory=Counter)
    held: Counter[Channel] = field(default_factory=Counter)

    @property
    def messages(self) -> int:
        return sum(self.by_channel.values())

    def channels_ranked(self) -> list[tuple[Channel, int]]:
        """BY_CHANNEL, most messages first (see rank_channels)."""
        return rank_channels(self.by_channel)

    def municipalities_ranked(self) -> list[tuple[str, int]]:
        """BY_MUNICIPALITY, most participants first; equal counts by name, so that the list
        and its top ten do not change with the order the database returns its rows in."""
        return sorted(self.by_municipality.items(), key=lambda item: (-item[1], item[0]))


def rank_channels(counts: Mapping[Channel, int]) -> list[tuple[Channel, int]]:
    """COUNTS most first; equal counts in the order of Channel, not in the order the rows
    came from the database (which Counter.most_common would keep)."""
    order = list(Channel)
    return sorted(counts.items(), key=lambda item: (-item[1], order.index(item[0])))


def channels_for(urgency: Urgency) -> tuple[Channel, ...]:
    """The channels a message of this urgency may use, in order of preference."""
    return CHANNELS_BY_URGENCY[Urgency(urgency)]


def quiet_hours_apply(urgency: Urgency) -> bool:
    """Quiet hours hold everything that is not urgent."""
    return Urgency(urgency) != Urgency.URGENT


def in_window(window: list[str] | tuple[str, str], moment: time) -> bool:
    """Whether MOMENT (local time) falls in a daily window [start, end), which may span midnight."""
    start, end = (time.fromisoformat(value) for value in window)
    if start <= end:
        return start <= moment < end
    return moment >= start or moment < end


def quiet_until(window: list[str] | tuple[str, str] | None, now: datetime) -> datetime | None:
    """When a message held by quiet hours may go: the end of the window, or None right now."""
    if not window:
        return None
    local = now.astimezone(LOCAL_TIME)
    if not in_window(window, local.time()):
        return None
    hours, minutes = (int(part) for part in window[1].split(":"))
    end = local.replace(hour=hours, minute=minutes, second=0, microsecond=0)
    if end <= local:
        end += timedelta(days=1)
    return end


def allowed_channels(mask: int, rule: ChannelRule | Urgency) -> list[Channel]:
    """The channels to use for one participant, given their choices (quiet hours only
    delay a message, see held_until)."""
    return [c for c in as_rule(rule).channels if mask & c.bit]


def held_until(channels: Iterable[Channel], quiet_hours: dict[str, Any] | None,
               now: datetime) -> tuple[datetime | None, ...]:
    """Per channel, until when the participant's quiet hours hold a non-urgent message."""
    hours = quiet_hours or {}
    return tuple(quiet_until(hours.get(c.value), now) for c in channels)


def select_recipients(session: Session, area: Area, rule: ChannelRule | Urgency,
                      now: datetime) -> Iterator[Recipient]:
    """Stream every (participant, channel, language) to reach in AREA at NOW.

    Only verified participants; each once per channel however many of their locations lie in
    the area; expired current locations do not count. Rows come from the database in batches,
    a participant's channels one after the other. Messages held by quiet hours are in the
    stream too; select_recipient_groups says until when.
    """
    return chain.from_iterable(select_recipient_batches(session, area, rule, now))


def select_recipient_batches(session: Session, area: Area, rule: ChannelRule | Urgency,
                             now: datetime) -> Iterator[list[Recipient]]:
    """The same stream in lists of a few thousand, for writers that insert in bulk."""
    for groups in select_recipient_groups(session, area, rule, now):
        batch: list[Recipient] = []
        for group in groups:
            language, channels = group.language, group.channels
            batch.extend([_recipient(Recipient, (pid, channel, language))
                          for pid in group.participant_ids.tolist() for channel in channels])
        yield batch


#: Recipient(*fields) without the keyword handling of a NamedTuple's __new__: a third faster.
_recipient = tuple.__new__


def select_recipient_groups(session: Session, area: Area, rule: ChannelRule | Urgency,
                            now: datetime) -> Iterator[list[RecipientGroup]]:
    """The same stream in columns: lists of groups with BATCH participants together (the
    last one fewer).

    Nothing is made per participant here: the database hands over packed ids per column of
    the area, and numpy de-duplicates them and sorts them into groups. RULE is the action's
    channel rule (rule_for(kind, urgency)); an urgency alone stands for its default rule.
    """
    chosen = as_rule(rule)
    groups = (_held_groups if chosen.quiet_hours else _groups)(session, area, chosen, now)
    return _portions(groups, BATCH)


def preview(session: Session, area: Area, rule: ChannelRule | Urgency, now: datetime) -> Preview:
    """Counts by channel and municipality of what select_recipients would yield."""
    result = Preview()
    by_id: Counter[int | None] = Counter()
    chosen = as_rule(rule)
    choose = _holder(chosen, now)
    for column in _per_column(session, area, chosen, now, municipality=True):
        for quiet, municipality_id, mask, _language, ids in column:
            channels, held = choose(mask, quiet)
            if channels:
                result.participants += len(ids)
                by_id[municipality_id] += len(ids)
                result.by_channel.update(dict.fromkeys(channels, len(ids)))
                result.held.update({c: len(ids) for c, until in zip(channels, held, strict=True)
                                    if until is not None})
    rows = session.execute(select(Municipality.id, Municipality.name)
                           .where(Municipality.id.in_([i for i in by_id if i]))).all()
    names: dict[int | None, str] = dict(rows)
    for municipality_id, count in by_id.items():
        result.by_municipality[names.get(municipality_id, "buiten Nederland")] += count
    return result


def _chooser(rule: ChannelRule) -> Callable[[int, Any], list[Channel]]:
    """Channels per participant, precomputed per channel mask (quiet hours play no part)."""
    by_mask = [allowed_channels(mask, rule) for mask in range(16)]

    def choose(mask: int, _quiet: Any) -> list[Channel]:
        return by_mask[mask]

    return choose


Holds = tuple[datetime | None, ...]


def _holder(rule: ChannelRule,
            now: datetime) -> Callable[[int, Any], tuple[tuple[Channel, ...], Holds]]:
    """Channels per participant and, per channel, until when quiet hours hold the message;
    computed once per distinct setting of quiet hours (a column has a handful)."""
    by_mask = [tuple(allowed_channels(mask, rule)) for mask in range(16)]
    cache: dict[tuple[int, Any], tuple[tuple[Channel, ...], Holds]] = {}

    def choose(mask: int, quiet: Any) -> tuple[tuple[Channel, ...], Holds]:
        channels = by_mask[mask]
        if not rule.quiet_hours or not quiet or quiet == "{}" or not channels:
            return channels, (None,) * len(channels)
        key = (mask, quiet if isinstance(quiet, str) else json.dumps(quiet, sort_keys=True))
        if key not in cache:
            hours = json.loads(quiet) if isinstance(quiet, str) else quiet
            cache[key] = channels, held_until(channels, hours, now)
        return cache[key]

    return choose


def _groups(session: Session, area: Area, rule: ChannelRule,
            now: datetime) -> Iterator[RecipientGroup]:
    choose = _chooser(rule)
    for column in _per_column(session, area, rule, now):
        parts: defaultdict[tuple[tuple[Channel, ...], Language], list[Ids]] = defaultdict(list)
        for quiet, _municipality, mask, language, ids in column:
            channels = choose(mask, quiet)
            if channels:
                parts[(tuple(channels), language)].append(ids)
        for (group, language), arrays in parts.items():
            yield RecipientGroup(group, language,
                                 arrays[0] if len(arrays) == 1 else np.concatenate(arrays))


def _held_groups(session: Session, area: Area, rule: ChannelRule,
                 now: datetime) -> Iterator[RecipientGroup]:
    """As _groups, for rules whose messages quiet hours hold: split also by hold times."""
    choose = _holder(rule, now)
    for column in _per_column(session, area, rule, now):
        parts: defaultdict[tuple[tuple[Channel, ...], Language, Holds], list[Ids]] = \
            defaultdict(list)
        for quiet, _municipality, mask, language, ids in column:
            channels, held = choose(mask, quiet)
            if channels:
                parts[(channels, language, held if any(held) else ())].append(ids)
        for (channels, language, held), arrays in parts.items():
            yield RecipientGroup(channels, language,
                                 arrays[0] if len(arrays) == 1 else np.concatenate(arrays), held)


def _portions(groups: Iterator[RecipientGroup], size: int) -> Iterator[list[RecipientGroup]]:
    """GROUPS cut and packed into lists of SIZE participants (the last one fewer)."""
    portion: list[RecipientGroup] = []
    room = size
    for group in groups:
        ids = group.participant_ids
        while len(ids):
            portion.append(RecipientGroup(group.channels, group.language, ids[:room],
                                          group.held_until))
            room, ids = room - len(ids[:room]), ids[room:]
            if not room:
                yield portion
                portion, room = [], size
    if portion:
        yield portion


# --- the SQL, per database ------------------------------------------------------------
#
# Each location becomes one integer, participant << 8 | channel mask << 4 | language, and
# the database packs a column's integers into one value (SQLite: group_concat text;
# PostgreSQL: string_agg of 8-byte big-endian binaries), grouped only by what numpy cannot
# see in the integer (quiet hours, municipality). Python then receives a handful of values
# per column instead of a row per location. The urgent path reads only the covering index of
# participant_location (which carries copies of status, channels and language, kept by
# triggers) and joins nothing; the normal path joins participant for the quiet hours (and,
# where the rule asks, drops the e-mail channel of participants without an address).

#: Part of a column: (quiet hours, municipality, channel mask, language, participant ids).
Part = tuple[Any, Any, int, Language, Ids]

_CURSORS = counter()
_LANGUAGES = tuple(Language)
_LANGUAGE_CODE = ("CASE l.language "
                  + " ".join(f"WHEN '{lang.value}' THEN {i}" for i, lang in enumerate(_LANGUAGES))
                  + " ELSE 0 END")
_CURRENT = "(l.expires_at IS NULL OR l.expires_at > :now)"
_ON_SPHERE = ("sin(radians(l.lat)) * :sin_lat + "
              "cos(radians(l.lat)) * :cos_lat * cos(radians(l.lon) - :lon_rad) >= :min_cos")


@dataclass(frozen=True)
class _Query:
    """The parts of a column's query that do not depend on the database."""

    keys: list[str]
    source: str
    code: str
    who: str
    params: dict[str, Any]


class _Seen:
    """Participants already yielded, as a bitmap indexed by id (no sorting, no hashing)."""

    def __init__(self, size: int) -> None:
        self.bits = np.zeros(size + 1, dtype=bool)
        self.slot = np.zeros(size + 1, dtype=np.int32)

    def claim(self, ids: Ids) -> npt.NDArray[np.bool_]:
        """Which of IDS are new, each id once; they count as seen from now on."""
        if not len(ids):
            return np.zeros(0, dtype=bool)
        top = int(ids.max())
        if top >= len(self.bits):
            more = top + 1 - len(self.bits)
            self.bits = np.concatenate([self.bits, np.zeros(more, dtype=bool)])
            self.slot = np.concatenate([self.slot, np.zeros(more, dtype=np.int32)])
        order = np.arange(len(ids), dtype=np.int32)
        self.slot[ids] = order  # of an id given twice, one position wins
        fresh: npt.NDArray[np.bool_] = (self.slot[ids] == order) & ~self.bits[ids]
        self.bits[ids[fresh]] = True
        return fresh


def _per_column(session: Session, area: Area, rule: ChannelRule, now: datetime,
                municipality: bool = False) -> Iterator[list[Part]]:
    """Per column of the area, the participants not yet seen, split by what decides their
    messages: quiet hours (None when they do not apply), municipality (None unless asked),
    channel mask and language."""
    postgres = session.get_bind().dialect.name == "postgresql"
    mask = rule.mask
    keys, source, channels = [], "participant_location l", "l.channels"
    quiet = rule.quiet_hours
    if quiet:
        keys.append("p.quiet_hours::text" if postgres else "p.quiet_hours")
    if quiet or rule.needs_address:
        source += " JOIN participant p ON p.id = l.participant_id"
    if rule.needs_address and mask & Channel.EMAIL.bit:
        channels = (f"(l.channels & CASE WHEN coalesce(p.email, '') = '' "
                    f"THEN {15 & ~Channel.EMAIL.bit} ELSE 15 END)")
    if municipality:
        keys.append("l.municipality_id")
    query = _Query(keys, source,
                   f"l.participant_id * 256 + ({channels} & {mask}) * 16 + {_LANGUAGE_CODE}",
                   f"{_CURRENT} AND l.status = 'verified' AND ({channels} & :mask) != 0",
                   {"mask": mask, "now": now if postgres else sqlite_datetime(now)})
    seen = _Seen(session.scalar(text("SELECT max(id) FROM participant")) or 0)
    packed = (_postgres_packed(session, area, query) if postgres
              else _sqlite_polygon_packed(session, area, query) if isinstance(area, Polygon)
              else _sqlite_packed(session, area, query))
    for column in packed:
        parts: list[Part] = []
        for key, codes in column:
            ids = codes >> 8
            fresh = seen.claim(ids)
            if not fresh.all():
                codes, ids = codes[fresh], ids[fresh]
            low = codes & 255
            for value in np.flatnonzero(np.bincount(low, minlength=256)).tolist():
                parts.append((key[0] if quiet else None, key[-1] if municipality else None,
                              value >> 4, _LANGUAGES[value & 15], ids[low == value]))
        yield parts


Packed = list[tuple[Sequence[Any], Ids]]


@dataclass(frozen=True)
class _Column:
    """A strip of the area one cell of longitude wide (CAST(lon * CELLS AS INTEGER) = cell).

    Every location of the area in it lies within [lat_min, lat_max]; every location in it
    within [inner_min, inner_max] lies inside the area for sure, so the exact test is left
    for the rim (an empty inner range when there is no such certainty)."""

    cell: int
    lon_min: float
    lon_max: float
    lat_min: float
    lat_max: float
    inner_min: float = 1.0
    inner_max: float = 0.0


#: Cells of longitude per degree, as in the SQLite index ix_participant_location_cell.
CELLS = 20


def _columns(area: Area) -> Iterator[_Column]:
    """The columns that cover AREA, west to east."""
    box = area.box()
    for cell in range(int(box.lon_min * CELLS), int(box.lon_max * CELLS) + 1):
        # CAST truncates towards zero, so cell 0 is twice as wide; a hair wider for rounding
        west = (cell - (cell <= 0)) / CELLS - 1e-9
        east = (cell + (cell >= 0)) / CELLS + 1e-9
        if isinstance(area, Polygon):
            yield _Column(cell, west, east, box.lat_min, box.lat_max)
            continue
        nearest = min(max(area.lon, west), east)
        outer = _meridian_arc(area, nearest, area.radius_m * 1.001 + 1)
        if outer is None:
            continue
        farthest = west if area.lon - west > east - area.lon else east
        inner = _meridian_arc(area, farthest, area.radius_m * 0.999 - 1) or (1.0, 0.0)
        yield _Column(cell, west, east, *outer, *inner)


def _meridian_arc(area: Circle, lon: float, radius_m: float) -> tuple[float, float] | None:
    """The latitudes on meridian LON within RADIUS_M of the circle's centre (on its sphere).

    Along a parallel the distance to the centre grows with the difference in longitude, so
    this arc at a column's nearest meridian bounds all of the column's points in the circle,
    and at its farthest meridian (a little smaller circle) holds only points inside it."""
    if radius_m <= 0:
        return None
    phi, dlon = math.radians(area.lat), math.radians(lon - area.lon)
    # cos(distance) = sin(lat) sin(phi) + cos(lat) cos(phi) cos(dlon) = r cos(lat - alpha)
    r = math.hypot(math.sin(phi), math.cos(phi) * math.cos(dlon))
    alpha = math.atan2(math.sin(phi), math.cos(phi) * math.cos(dlon))
    least = math.cos(radius_m / gaussian_radius(area.lat))
    if least > r:
        return None
    half = math.acos(least / r)
    return math.degrees(alpha - half), math.degrees(alpha + half)


_IN_COLUMN = ("(l.lon BETWEEN :lon_min AND :lon_max AND l.lat BETWEEN :inner_min AND :inner_max)"
              " OR {exact}")


def _sqlite_packed(session: Session, area: Area, query: _Query) -> Iterator[Packed]:
    """One query per column, on the index of (cell, lat, ...), all in the session's
    transaction (so one snapshot)."""
    assert isinstance(area, Circle)
    columns = ", ".join([*query.keys, f"group_concat({query.code})"])
    group = f" GROUP BY {', '.join(query.keys)}" if query.keys else ""
    sql = (f"SELECT {columns} FROM {query.source} WHERE {_SQLITE_COLUMN} "
           f"AND ({_IN_COLUMN.format(exact=_ON_SPHERE)}) AND {query.who}{group}")
    params = {**query.params, **_sphere_params(area)}
    cursor = _sqlite_cursor(session)
    try:
        for column in _columns(area):
            cursor.execute(sql, {**params, **asdict(column)})
            yield [(tuple(key), np.fromstring(codes, dtype=np.int64, sep=","))
                   for *key, codes in cursor.fetchall() if codes]
    finally:
        cursor.close()


_SQLITE_COLUMN = (f"CAST(l.lon * {CELLS} AS INTEGER) = :cell "
                  "AND l.lat BETWEEN :lat_min AND :lat_max")


def _sqlite_polygon_packed(session: Session, area: Polygon, query: _Query) -> Iterator[Packed]:
    """Polygons are tested in Python (shapely), so their columns come as rows, not packed."""
    columns = ", ".join([*query.keys, query.code, "l.lon", "l.lat"])
    sql = f"SELECT {columns} FROM {query.source} WHERE {_SQLITE_COLUMN} AND {query.who}"
    width = len(query.keys)
    cursor = _sqlite_cursor(session)
    try:
        for column in _columns(area):
            cursor.execute(sql, {**query.params, **asdict(column)})
            rows = cursor.fetchall()
            lon = np.fromiter((row[width + 1] for row in rows), float, len(rows))
            lat = np.fromiter((row[width + 2] for row in rows), float, len(rows))
            hits = shapely.intersects_xy(area.geometry, lon, lat)  # inside or on the edge
            by_key: defaultdict[tuple[Any, ...], list[int]] = defaultdict(list)
            for row, hit in zip(rows, hits.tolist(), strict=True):
                if hit:
                    by_key[row[:width]].append(row[width])
            yield [(key, np.array(codes, dtype=np.int64)) for key, codes in by_key.items()]
    finally:
        cursor.close()


def _sqlite_cursor(session: Session) -> Any:
    raw: Any = session.connection().connection.driver_connection
    return raw.cursor()


def _postgres_packed(session: Session, area: Area, query: _Query) -> Iterator[Packed]:
    """One statement (so one snapshot), a UNION ALL of one arm per column, each searching the
    GiST index with its own box in RD New and answering one row of arrays; a server-side
    cursor steps through it a column at a time. The boxes are constants in the statement, so
    the planner sees how much each holds (a bitmap scan, not the index scan it picks blind)."""
    exact, params = _postgres_area(area)
    group = f" GROUP BY {', '.join(query.keys)}" if query.keys else ""
    inner = ", ".join([*(f"{key} AS k{i}" for i, key in enumerate(query.keys)),
                       f"string_agg(int8send({query.code}), ''::bytea) AS codes"])
    outer = ", ".join([*(f"array_agg(g.k{i})" for i in range(len(query.keys))),
                       "array_agg(g.codes)"])
    arms = []
    for n, column in enumerate(_columns(area)):
        values = {f"{name}_{n}": value for name, value in asdict(column).items()}
        params.update(values)
        # densified first: a long edge along a parallel bends in RD New
        box = (f"ST_Expand(ST_Transform(ST_Segmentize(ST_MakeEnvelope(:lon_min_{n}, :lat_min_{n},"
               f" :lon_max_{n}, :lat_max_{n}, 4326), 0.01), 28992), 100)")
        within = (f"(l.lon BETWEEN :lon_min_{n} AND :lon_max_{n} AND l.lat BETWEEN "
                  f":inner_min_{n} AND :inner_max_{n}) OR {exact}")
        arms.append(f"(SELECT {outer} FROM (SELECT {inner} FROM {query.source} "
                    f"WHERE l.geom && {box} AND ({within}) AND {query.who}{group}) g)")
    if not arms:
        return
    params.update(query.params)
    raw: Any = session.connection().connection.driver_connection
    # server-side, so a column is computed when it is fetched; a unique name lets selections
    # interleave
    cursor = raw.cursor(name=f"select_recipients_{next(_CURSORS)}", binary=True)
    try:
        cursor.execute(re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", " UNION ALL ".join(arms)),
                       params)
        while row := cursor.fetchone():
            *keys, blobs = row
            yield [(key, np.frombuffer(blob, dtype=">i8").astype(np.int64))
                   for *key, blob in zip(*keys, blobs, strict=True) if blob] if blobs else []
    finally:
        cursor.close()


def _sphere_params(area: Circle) -> dict[str, Any]:
    return {"sin_lat": math.sin(math.radians(area.lat)),
            "cos_lat": math.cos(math.radians(area.lat)),
            "lon_rad": math.radians(area.lon), "min_cos": area.min_cosine}


def _postgres_area(area: Area) -> tuple[str, dict[str, Any]]:
    """The exact test on each location in a column, the same as on SQLite."""
    if isinstance(area, Circle):
        return _ON_SPHERE, _sphere_params(area)
    shape = "ST_SetSRID(ST_GeomFromGeoJSON(:shape), 4326)"
    return (f"ST_Covers({shape}, ST_SetSRID(ST_MakePoint(l.lon, l.lat), 4326))",
            {"shape": json.dumps(area.geojson)})


def cluster_locations(session: Session) -> bool:
    """Rewrite participant locations in the order of their GiST index (PostgreSQL only).

    An area's locations then share heap pages: a 50,000 selection reads ~1,500 pages instead
    of ~28,000. New registrations arrive in any order, so an operator runs this now and then
    (`burgernet db cluster`; it locks the table, ~20 s for 2M locations). Returns whether
    there was anything to do (SQLite keeps its rows in the covering index already).
    """
    if session.get_bind().dialect.name != "postgresql":
        return False
    session.execute(text("CLUSTER participant_location"))
    session.execute(text("ANALYZE participant_location"))
    return True
