"""Benchmark: selecting the recipients of a circle holding about 50,000 participants.

    .venv/bin/python bench/select.py --database-url sqlite:///var/burgernet.sqlite3
    .venv/bin/python bench/select.py --database-url postgresql+psycopg://…/burgernet

The database must hold the 1.6M demo population (`burgernet seed-demo --participants
1600000`). The circle is centred on Utrecht and sized (untimed) to select ~50,000 verified
participants. Timed: the whole stream of select_recipient_groups (what the fan-out writes the
outbox from), consumed. Baseline, same run and same box: the bare indexed bounding-box count of
locations (SQLite: the B-tree on longitude cell and latitude; PostgreSQL: the GiST index). Goal:
50,000 selected in at most 100 ms. Also printed: how soon the first batch is ready (the dialer
starts sending then, while the rest streams), and the same stream as one Recipient tuple per
message.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file's name would shadow the standard library's `select` module: run from the root.
sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

from sqlalchemy import func, select, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from core.db import make_engine  # noqa: E402
from core.geo import Circle, circle  # noqa: E402
from core.models import Participant, Urgency  # noqa: E402
from core.schema import ensure_schema  # noqa: E402
from core.targeting import (  # noqa: E402
    CELLS,
    select_recipient_batches,
    select_recipient_groups,
)

CENTRE = (52.0907, 5.1214)  # Utrecht
NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


def selected(session: Session, area: Circle) -> tuple[int, int]:
    """(participants, messages) of one full pass over the stream (the timed figure)."""
    participants, messages = 0, 0
    for groups in select_recipient_groups(session, area, Urgency.URGENT, NOW):
        for group in groups:
            participants += len(group.participant_ids)
            messages += group.recipients
    return participants, messages


def all_batches(session: Session, area: Circle) -> int:
    """The same stream as one Recipient tuple per message."""
    return sum(len(batch) for batch in select_recipient_batches(session, area, Urgency.URGENT,
                                                                NOW))


def first_batch(session: Session, area: Circle) -> int:
    """How soon the first recipients are there to be sent."""
    stream = select_recipient_groups(session, area, Urgency.URGENT, NOW)
    size = sum(group.recipients for group in next(stream))
    stream.close()
    return size


def box_count(session: Session, area: Circle) -> int:
    if session.get_bind().dialect.name == "postgresql":
        return session.execute(text(
            "SELECT count(*) FROM participant_location WHERE geom && ST_Expand(ST_Transform("
            "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 28992), :r)"),
            {"lat": area.lat, "lon": area.lon, "r": area.radius_m}).scalar_one()
    box = area.box()
    cells = ", ".join(str(cell) for cell in range(int(box.lon_min * CELLS),
                                                  int(box.lon_max * CELLS) + 1))
    return session.execute(text(
        f"SELECT count(*) FROM participant_location WHERE CAST(lon * {CELLS} AS INTEGER) "
        f"IN ({cells}) AND lat BETWEEN :a AND :b AND lon BETWEEN :c AND :d"),
        {"a": box.lat_min, "b": box.lat_max, "c": box.lon_min, "d": box.lon_max}).scalar_one()


def fit_circle(session: Session, target: int) -> Circle:
    radius = 10_000.0
    for _ in range(6):
        count, _ = selected(session, circle(*CENTRE, radius))
        if abs(count - target) < target * 0.01:
            break
        radius *= (target / max(count, 1)) ** 0.5
    return circle(*CENTRE, radius)


def median_ms(action, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default="sqlite:///var/burgernet.sqlite3")
    parser.add_argument("--target", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    engine = make_engine(args.database_url)
    ensure_schema(engine)
    with Session(engine) as session:
        population = session.scalar(select(func.count(Participant.id))) or 0
        if population < 1_000_000:
            sys.exit(f"only {population} participants: run "
                     "`burgernet seed-demo --reset --participants 1600000` first")
        area = fit_circle(session, args.target)
        participants, messages = selected(session, area)
        boxed = box_count(session, area)
        assert all_batches(session, area) == messages
        ours = median_ms(lambda: selected(session, area), args.runs)
        first = median_ms(lambda: first_batch(session, area), args.runs)
        tuples = median_ms(lambda: all_batches(session, area), args.runs)
        bare = median_ms(lambda: box_count(session, area), args.runs)
    print(f"backend: {engine.dialect.name}, population: {population}")
    print(f"circle: Utrecht, radius {area.radius_m:.0f} m; {participants} participants, "
          f"{messages} messages; {boxed} locations in the bounding box")
    print(f"whole stream (all groups):   median {ours:.1f} ms over {args.runs} runs")
    print(f"first batch of recipients:   median {first:.1f} ms")
    print(f"as Recipient tuples:         median {tuples:.1f} ms")
    print(f"bare indexed box count:      median {bare:.1f} ms")
    print(f"ratio: {ours / bare:.2f}; goal 50,000 in <= 100 ms: "
          f"{'met' if ours <= 100 else 'NOT met'}")


if __name__ == "__main__":
    main()
