"""Selection of recipients, run on SQLite and (with TEST_DATABASE_URL) on PostgreSQL + PostGIS."""

import math
import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import shapely
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session

from core.geo import (
    AreaError,
    circle,
    gaussian_radius,
    in_netherlands,
    netherlands,
    parse_area,
    polygon,
)
from core.models import (
    ActionKind,
    Channel,
    Delivery,
    Language,
    LocationKind,
    Participant,
    ParticipantLocation,
    ParticipantStatus,
    Urgency,
    channel_mask,
)
from core.targeting import (
    QUIET_HOURS_RULE,
    ChannelRule,
    Preview,
    _columns,
    preview,
    rule_for,
    select_recipient_batches,
    select_recipient_groups,
    select_recipients,
)

NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
UTRECHT = (52.0907, 5.1214)
_numbers = iter(range(1_000, 9_999_999))


def destination(lat: float, lon: float, bearing: float, metres: float) -> tuple[float, float]:
    """The point METRES away from (LAT, LON) in direction BEARING (degrees), on the sphere."""
    d = metres / gaussian_radius(lat)
    phi, lam, theta = math.radians(lat), math.radians(lon), math.radians(bearing)
    phi2 = math.asin(math.sin(phi) * math.cos(d) + math.cos(phi) * math.sin(d) * math.cos(theta))
    lam2 = lam + math.atan2(math.sin(theta) * math.sin(d) * math.cos(phi),
                            math.cos(d) - math.sin(phi) * math.sin(phi2))
    return math.degrees(phi2), math.degrees(lam2)


@pytest.fixture
def person(db: Session) -> Callable[..., Participant]:
    """Make a participant with locations at the given points, bypassing registration."""

    def make(*points: tuple[float, float], channels=(Channel.SMS,), language=Language.NL,
             status=ParticipantStatus.VERIFIED, quiet_hours=None, kinds=None,
             expires_at=None) -> Participant:
        participant = Participant(phone=f"+3169{next(_numbers):07d}", status=status,
                                  channels=channel_mask(set(channels)), language=language,
                                  quiet_hours=quiet_hours or {},
                                  email="x@example.org" if Channel.EMAIL in channels else None)
        for index, (lat, lon) in enumerate(points):
            kind = (kinds or [LocationKind.HOME, LocationKind.WORK, LocationKind.WORK])[index]
            participant.locations.append(ParticipantLocation(
                kind=kind, lat=lat, lon=lon, country="NL" if in_netherlands(lat, lon) else "BE",
                expires_at=expires_at if kind == LocationKind.CURRENT else None))
        db.add(participant)
        db.flush()
        return participant

    return make


def _selected(db: Session, area, urgency=Urgency.URGENT, now=NOW) -> set[tuple[int, Channel]]:
    return {(r.participant_id, r.channel) for r in select_recipients(db, area, urgency, now)}


def _border_point() -> tuple[float, float]:
    """A vertex of the real national outline on the Belgian border near Putte/Ossendrecht."""
    outline = netherlands().context
    target = shapely.Point(4.39, 51.37)
    ring = max(getattr(outline, "geoms", [outline]), key=lambda g: g.area).exterior
    lon, lat = min(ring.coords, key=lambda c: shapely.Point(c).distance(target))
    return lat, lon


def test_a_circle_on_the_belgian_border_reaches_both_sides_and_stops_at_its_radius(
        db: Session, person) -> None:
    lat, lon = _border_point()
    assert shapely.Point(lon, lat).distance(shapely.Point(4.39, 51.37)) < 0.05
    inside, outside = {}, {}
    for bearing in range(0, 360, 15):
        for metres, bucket in ((1_500, inside), (4_500, inside), (5_600, outside)):
            point = destination(lat, lon, bearing, metres)
            bucket[person(point).id] = in_netherlands(*point)
    selected = {pid for pid, _ in _selected(db, circle(lat, lon, 5_000))}
    assert selected == set(inside)
    assert True in inside.values() and False in inside.values()  # both countries in the circle


def test_a_polygon_with_a_hole_leaves_the_hole_out(db: Session, person) -> None:
    lat, lon = UTRECHT
    outer = [[lon - 0.1, lat - 0.1], [lon + 0.1, lat - 0.1], [lon + 0.1, lat + 0.1],
             [lon - 0.1, lat + 0.1], [lon - 0.1, lat - 0.1]]
    hole = [[lon - 0.02, lat - 0.02], [lon - 0.02, lat + 0.02], [lon + 0.02, lat + 0.02],
            [lon + 0.02, lat - 0.02], [lon - 0.02, lat - 0.02]]
    area = polygon({"type": "Polygon", "coordinates": [outer, hole]})
    in_ring = person((lat + 0.06, lon))
    in_hole = person((lat + 0.01, lon - 0.01))
    beyond = person((lat + 0.15, lon))
    selected = {pid for pid, _ in _selected(db, area)}
    assert in_ring.id in selected
    assert in_hole.id not in selected and beyond.id not in selected


def _held(db: Session, area, rule, now=NOW) -> dict[tuple[int, Channel], datetime | None]:
    """Per (participant, channel): until when quiet hours hold the message (None: now)."""
    found = {}
    for groups in select_recipient_groups(db, area, rule, now):
        for group in groups:
            holds = group.held_until or (None,) * len(group.channels)
            for pid in group.participant_ids.tolist():
                for channel, until in zip(group.channels, holds, strict=True):
                    found[(pid, channel)] = until
    return found


def test_quiet_hours_at_three_at_night_hold_a_normal_message_but_not_an_amber_alert(
        db: Session, person) -> None:
    amsterdam = ZoneInfo("Europe/Amsterdam")
    night = datetime(2026, 11, 24, 3, 0, tzinfo=amsterdam)
    sleeper = person(UTRECHT, channels=(Channel.SMS, Channel.PUSH),
                     quiet_hours={"sms": ["23:00", "07:00"], "push": ["22:00", "06:30"]})
    area = circle(*UTRECHT, 1_000)
    assert _held(db, area, Urgency.NORMAL, night) == {
        (sleeper.id, Channel.SMS): datetime(2026, 11, 24, 7, 0, tzinfo=amsterdam),
        (sleeper.id, Channel.PUSH): datetime(2026, 11, 24, 6, 30, tzinfo=amsterdam)}
    assert _held(db, area, rule_for(ActionKind.AMBER, Urgency.URGENT), night) == {
        (sleeper.id, Channel.SMS): None, (sleeper.id, Channel.PUSH): None}
    assert _held(db, area, Urgency.NORMAL, night.replace(hour=8)) == {
        (sleeper.id, Channel.SMS): None, (sleeper.id, Channel.PUSH): None}


def test_the_quiet_hours_rule_is_written_for_participants_in_both_languages() -> None:
    assert "AMBER" in QUIET_HOURS_RULE["nl"] and "AMBER" in QUIET_HOURS_RULE["en"]


def test_urgency_chooses_the_channels(db: Session, person) -> None:
    everything = person(UTRECHT, channels=tuple(Channel))
    area = circle(*UTRECHT, 1_000)
    assert {c for _, c in _selected(db, area, Urgency.URGENT)} == {
        Channel.VOICE, Channel.SMS, Channel.PUSH}
    assert {c for _, c in _selected(db, area, Urgency.NORMAL)} == {
        Channel.EMAIL, Channel.PUSH, Channel.SMS}
    assert {pid for pid, _ in _selected(db, area)} == {everything.id}


def test_two_locations_in_the_area_reach_a_participant_once_per_channel(
        db: Session, person) -> None:
    lat, lon = UTRECHT
    commuter = person((lat, lon), (lat + 0.01, lon + 0.01),
                      channels=(Channel.SMS, Channel.VOICE))
    recipients = list(select_recipients(db, circle(lat, lon, 5_000), Urgency.URGENT, NOW))
    assert Counter(r.channel for r in recipients) == {Channel.VOICE: 1, Channel.SMS: 1}
    assert {r.participant_id for r in recipients} == {commuter.id}


def test_only_verified_participants_are_reached(db: Session, person) -> None:
    person(UTRECHT, status=ParticipantStatus.PENDING)
    person(UTRECHT, status=ParticipantStatus.STOPPED)
    verified = person(UTRECHT)
    assert {pid for pid, _ in _selected(db, circle(*UTRECHT, 500))} == {verified.id}


def test_a_current_location_counts_until_it_expires(db: Session, person) -> None:
    visitor = person((52.37, 4.89), UTRECHT, kinds=[LocationKind.HOME, LocationKind.CURRENT],
                     expires_at=NOW + timedelta(hours=2))
    area = circle(*UTRECHT, 1_000)
    assert {pid for pid, _ in _selected(db, area)} == {visitor.id}
    assert _selected(db, area, now=NOW + timedelta(hours=3)) == set()


def test_recipients_carry_their_language(db: Session, person) -> None:
    person(UTRECHT, language=Language.EN)
    [recipient] = select_recipients(db, circle(*UTRECHT, 500), Urgency.URGENT, NOW)
    assert recipient.language == Language.EN


def test_the_preview_counts_by_channel_and_municipality_and_writes_nothing(
        db: Session, person) -> None:
    lat, lon = UTRECHT
    for _ in range(3):
        person((lat, lon), channels=(Channel.SMS, Channel.VOICE))
    person((52.0, 5.08), channels=(Channel.SMS,))  # Nieuwegein, south of Utrecht
    deliveries = db.scalar(select(func.count(Delivery.id)))
    result = preview(db, circle(lat, lon, 15_000), Urgency.URGENT, NOW)
    assert result.participants == 4 and result.messages == 7
    assert result.by_channel == {Channel.SMS: 4, Channel.VOICE: 3}
    assert sum(result.by_municipality.values()) == 4
    assert db.scalar(select(func.count(Delivery.id))) == deliveries
    assert not db.new and not db.dirty


def test_equal_counts_are_listed_in_a_fixed_order_whatever_order_the_rows_came_in() -> None:
    """Pages and the CLI list channels and municipalities most first; a tie goes by Channel's
    order and by name, not by the order the database returned its rows in (which
    Counter.most_common would keep)."""
    rows = [(Channel.PUSH, "Zeist", 2), (Channel.EMAIL, "Bunnik", 2), (Channel.SMS, "Utrecht", 5)]
    previews = []
    for ordered in (rows, rows[::-1]):
        result = Preview()
        for channel, place, number in ordered:
            result.by_channel[channel] += number
            result.by_municipality[place] += number
        previews.append(result)
    for result in previews:
        assert result.channels_ranked() == [(Channel.SMS, 5), (Channel.EMAIL, 2),
                                            (Channel.PUSH, 2)]
        assert result.municipalities_ranked() == [("Utrecht", 5), ("Bunnik", 2), ("Zeist", 2)]
    assert [c for c, _ in previews[0].by_channel.most_common()] != \
        [c for c, _ in previews[1].by_channel.most_common()]  # what the ranking is for


def test_the_selection_streams(db: Session, person) -> None:
    person(UTRECHT)
    stream = select_recipients(db, circle(*UTRECHT, 500), Urgency.URGENT, NOW)
    assert iter(stream) is stream
    assert next(stream).channel == Channel.SMS


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"lat": 52.0, "lon": 5.0, "radius_m": 0}, "must be a positive number"),
    ({"lat": 52.0, "lon": 5.0, "radius_m": -5}, "must be a positive number"),
    ({"lat": 52.0, "lon": 5.0, "radius_m": 400_000}, "larger than the country"),
    ({"lat": 52.0, "lon": 5.0, "radius_m": float("nan")}, "must be a positive number"),
    ({"lat": 5.0, "lon": 52.0, "radius_m": 1000}, "outside Europe"),
    ({"lat": 52.0, "lon": 5.0}, "needs a centre"),
    ({"geojson": {"type": "Polygon", "coordinates": [[[5, 52], [5.1, 52.1], [5.1, 52],
                                                      [5, 52.1], [5, 52]]]}},
     "Self-intersection"),
    ({"geojson": {"type": "Polygon", "coordinates": [[[5, 52], [5.1, 52], [5.1, 52.1],
                                                      [5, 52.1]]]}}, "open"),
    ({"geojson": {"type": "Polygon", "coordinates": [[[5, 52], [5.1, 52], [5, 52]]]}},
     "at least 4 positions"),
    ({"geojson": {"type": "Point", "coordinates": [5, 52]}}, "not a Polygon"),
    ({"geojson": "{not json"}, "not valid JSON"),
    ({"geojson": {"type": "Polygon", "coordinates": [[[50, 5], [51, 5], [51, 6], [50, 5]]]}},
     "outside Europe"),
])
def test_bad_areas_are_refused_with_a_reason(kwargs, message: str) -> None:
    with pytest.raises(AreaError, match=message):
        parse_area(**kwargs)


def test_changes_to_a_participant_reach_the_area_query_at_once(db: Session, person) -> None:
    participant = person(UTRECHT, channels=(Channel.SMS,))
    area = circle(*UTRECHT, 500)
    participant.channels = channel_mask({Channel.VOICE})
    participant.language = Language.EN
    db.flush()
    assert list(select_recipients(db, area, Urgency.URGENT, NOW)) == [
        (participant.id, Channel.VOICE, Language.EN)]
    participant.status = ParticipantStatus.STOPPED
    db.flush()
    assert list(select_recipients(db, area, Urgency.URGENT, NOW)) == []


@pytest.mark.parametrize("radius", [120.0, 3_000.0, 12_750.0, 60_000.0])
def test_a_circle_holds_exactly_what_lies_within_its_radius(db: Session, person,
                                                             radius: float) -> None:
    """Centimetres either side of the rim, all round: the columns' shortcuts change nothing."""
    lat, lon = UTRECHT
    inside, outside = set(), set()
    for bearing in range(0, 360, 10):
        for metres, bucket in ((radius - 0.05, inside), (radius + 0.05, outside),
                               (radius * 0.7, inside), (radius * 0.3, inside)):
            bucket.add(person(destination(lat, lon, bearing + 3, metres)).id)
    assert {pid for pid, _ in _selected(db, circle(lat, lon, radius))} == inside


def test_the_columns_bound_the_circle_and_their_inner_ranges_lie_inside_it() -> None:
    rng = random.Random(7)
    for _ in range(20):
        area = circle(rng.uniform(50.8, 53.5), rng.uniform(3.4, 7.2), rng.uniform(50, 150_000))
        box = area.box()
        columns = {c.cell: c for c in _columns(area)}
        for _ in range(2_000):
            plat, plon = rng.uniform(box.lat_min, box.lat_max), rng.uniform(box.lon_min,
                                                                            box.lon_max)
            cos_angle = (math.sin(math.radians(plat)) * math.sin(math.radians(area.lat))
                         + math.cos(math.radians(plat)) * math.cos(math.radians(area.lat))
                         * math.cos(math.radians(plon - area.lon)))
            column = columns.get(int(plon * 20))
            if cos_angle >= area.min_cosine:
                assert column is not None and column.lat_min <= plat <= column.lat_max
            if column is not None and column.inner_min <= plat <= column.inner_max:
                assert cos_angle >= area.min_cosine


def test_the_groups_are_the_stream_in_columns(db: Session, person) -> None:
    lat, lon = UTRECHT
    for index in range(40):  # homes and workplaces across several columns of the area
        person((lat + 0.01 * (index % 7), lon - 0.06 + 0.03 * (index % 5)),
               (lat - 0.02 * (index % 3), lon + 0.02 * (index % 6)),
               channels=[(Channel.SMS,), (Channel.SMS, Channel.VOICE),
                         (Channel.PUSH, Channel.VOICE)][index % 3],
               language=Language.EN if index % 4 == 0 else Language.NL)
    area = circle(lat, lon, 20_000)
    recipients = list(select_recipients(db, area, Urgency.URGENT, NOW))
    groups = [g for batch in select_recipient_groups(db, area, Urgency.URGENT, NOW)
              for g in batch]
    from_groups = [(pid, channel, g.language) for g in groups
                   for pid in g.participant_ids.tolist() for channel in g.channels]
    assert len(recipients) == len(set(recipients)) == 14 * 1 + 26 * 2
    assert sorted(from_groups) == sorted(recipients)
    assert preview(db, area, Urgency.URGENT, NOW).messages == len(recipients)


def test_the_stream_comes_in_batches_of_at_most_batch_participants(
        db: Session, person, monkeypatch) -> None:
    import core.targeting

    monkeypatch.setattr(core.targeting, "BATCH", 3)
    for index in range(10):
        person((UTRECHT[0] + 0.001 * index, UTRECHT[1]), channels=(Channel.SMS, Channel.VOICE))
    batches = list(select_recipient_batches(db, circle(*UTRECHT, 2_000), Urgency.URGENT, NOW))
    assert [len(batch) for batch in batches] == [6, 6, 6, 2]


def test_on_sqlite_a_column_is_one_range_of_the_covering_index(db: Session) -> None:
    if db.get_bind().dialect.name != "sqlite":
        pytest.skip("PostgreSQL searches the GiST index")
    plan = db.execute(text(
        "EXPLAIN QUERY PLAN SELECT group_concat(participant_id) FROM participant_location l "
        "WHERE CAST(l.lon * 20 AS INTEGER) = 102 AND l.lat BETWEEN 52 AND 52.2 "
        "AND l.status = 'verified'")).all()
    assert "COVERING INDEX ix_participant_location_cell" in str(plan)


@pytest.mark.parametrize(("kind", "urgency", "channels"), [
    (ActionKind.SUSPECT, Urgency.URGENT, {Channel.VOICE, Channel.SMS, Channel.PUSH}),
    (ActionKind.MISSING_PERSON, Urgency.NORMAL, {Channel.EMAIL, Channel.PUSH, Channel.SMS}),
    (ActionKind.AMBER, Urgency.URGENT, set(Channel)),
    (ActionKind.NEIGHBOURHOOD_INQUIRY, Urgency.NORMAL, {Channel.EMAIL}),
    (ActionKind.PREVENTIVE, Urgency.NORMAL, {Channel.EMAIL, Channel.PUSH}),
])
def test_the_kind_chooses_the_channels(db: Session, person, kind, urgency, channels) -> None:
    everything = person(UTRECHT, channels=tuple(Channel))
    selected = _selected(db, circle(*UTRECHT, 1_000), rule_for(kind, urgency))
    assert selected == {(everything.id, channel) for channel in channels}


def test_an_amber_alert_uses_exactly_the_channels_each_participant_chose(
        db: Session, person) -> None:
    sms_only = person(UTRECHT)
    mail_and_push = person(UTRECHT, channels=(Channel.EMAIL, Channel.PUSH))
    selected = _selected(db, circle(*UTRECHT, 1_000), rule_for(ActionKind.AMBER, Urgency.URGENT))
    assert selected == {(sms_only.id, Channel.SMS), (mail_and_push.id, Channel.EMAIL),
                        (mail_and_push.id, Channel.PUSH)}


def test_an_inquiry_goes_by_email_only_and_never_to_someone_without_an_address(
        db: Session, person) -> None:
    reader = person(UTRECHT, channels=(Channel.EMAIL, Channel.SMS))
    no_address = person(UTRECHT, channels=(Channel.EMAIL, Channel.PUSH))
    no_address.email = None  # registration refuses this; the selection must not rely on it
    phone_only = person(UTRECHT, channels=(Channel.SMS, Channel.VOICE, Channel.PUSH))
    db.flush()
    area = circle(*UTRECHT, 1_000)
    inquiry = rule_for(ActionKind.NEIGHBOURHOOD_INQUIRY, Urgency.NORMAL)
    assert _selected(db, area, inquiry) == {(reader.id, Channel.EMAIL)}
    preventive = rule_for(ActionKind.PREVENTIVE, Urgency.NORMAL)
    assert _selected(db, area, preventive) == {(reader.id, Channel.EMAIL),
                                               (no_address.id, Channel.PUSH),
                                               (phone_only.id, Channel.PUSH)}
    assert preview(db, area, inquiry, NOW).by_channel == {Channel.EMAIL: 1}


def test_a_preventive_message_waits_for_the_quiet_hours_of_each_channel(
        db: Session, person) -> None:
    amsterdam = ZoneInfo("Europe/Amsterdam")
    evening = datetime(2026, 11, 23, 22, 30, tzinfo=amsterdam)
    owl = person(UTRECHT, channels=(Channel.EMAIL, Channel.PUSH),
                 quiet_hours={"push": ["22:00", "07:30"]})
    lark = person(UTRECHT, channels=(Channel.EMAIL,), quiet_hours={"email": ["21:00", "06:00"]})
    awake = person(UTRECHT, channels=(Channel.PUSH,), quiet_hours={"push": ["01:00", "05:00"]})
    area = circle(*UTRECHT, 1_000)
    rule = rule_for(ActionKind.PREVENTIVE, Urgency.NORMAL)
    assert _held(db, area, rule, evening) == {
        (owl.id, Channel.EMAIL): None,
        (owl.id, Channel.PUSH): datetime(2026, 11, 24, 7, 30, tzinfo=amsterdam),
        (lark.id, Channel.EMAIL): datetime(2026, 11, 24, 6, 0, tzinfo=amsterdam),
        (awake.id, Channel.PUSH): None}
    counted = preview(db, area, rule, evening)
    assert counted.by_channel == {Channel.EMAIL: 2, Channel.PUSH: 2}
    assert counted.held == {Channel.EMAIL: 1, Channel.PUSH: 1}


def test_urgent_messages_are_never_held_whatever_their_kind() -> None:
    assert rule_for(ActionKind.PREVENTIVE, Urgency.URGENT) == ChannelRule(
        (Channel.EMAIL, Channel.PUSH), quiet_hours=False, needs_address=True)
    assert not rule_for(ActionKind.AMBER, Urgency.URGENT).quiet_hours
    assert rule_for(ActionKind.SUSPECT, Urgency.NORMAL).quiet_hours


def test_the_urgent_search_rule_reads_only_the_covering_index(db: Session) -> None:
    """The hot path of a search action stays a join-free query on participant_location."""
    statements: list[str] = []
    connection = db.connection()

    def spy(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    event.listen(connection, "before_cursor_execute", spy)
    try:
        list(select_recipients(db, circle(*UTRECHT, 1_000), Urgency.URGENT, NOW))
        list(select_recipients(db, circle(*UTRECHT, 1_000),
                               rule_for(ActionKind.AMBER, Urgency.URGENT), NOW))
    finally:
        event.remove(connection, "before_cursor_execute", spy)
    assert all("JOIN participant" not in s for s in statements)
