"""Benchmark: `seed-demo` against the bare driver inserting the same rows, in one run.

    .venv/bin/python bench/seed.py [--participants 200000] [--server-url postgresql+psycopg://…]

Both sides write the same participants and locations into a fresh database with the same
schema and indexes. The baseline gets its rows ready-made (generated and converted before the
clock starts) and hands them to the driver alone: sqlite3's executemany, or psycopg's COPY.
The ratio (seed-demo rate ÷ baseline rate) is what our own generation and conversion leave of
the driver's speed; the 1.6M estimate scales the measured rate.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.db import make_engine, session_factory  # noqa: E402
from core.models import Participant, ParticipantLocation  # noqa: E402
from core.reference import load_reference  # noqa: E402
from core.schema import ensure_schema  # noqa: E402
from core.seed import (  # noqa: E402
    LOCATION_COLUMNS,
    PARTICIPANT_COLUMNS,
    population_chunks,
    residential_areas,
    seed_demo,
)
from core.settings import DEFAULT_DATA_DIR, PACKAGE_DIR  # noqa: E402

CONFIG = PACKAGE_DIR.parent / "config" / "meldkamers.toml"


class Databases:
    """Fresh databases with schema and reference data, on SQLite files or a PostgreSQL server."""

    def __init__(self, server_url: str | None) -> None:
        self.server_url = server_url
        self.folder = tempfile.TemporaryDirectory(prefix="bench-seed-")
        self.created: list[str] = []

    def new(self) -> str:
        if self.server_url is None:
            url = f"sqlite:///{Path(self.folder.name) / uuid.uuid4().hex}.sqlite3"
        else:
            name = f"bench_{uuid.uuid4().hex[:10]}"
            self._admin(f'CREATE DATABASE "{name}"')
            self.created.append(name)
            url = make_url(self.server_url).set(database=name).render_as_string(
                hide_password=False)
        engine = make_engine(url)
        ensure_schema(engine)
        with Session(engine) as session, session.begin():
            load_reference(session, DEFAULT_DATA_DIR, CONFIG)
        engine.dispose()
        return url

    def _admin(self, statement: str) -> None:
        admin = create_engine(self.server_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(statement))
        admin.dispose()

    def close(self) -> None:
        for name in self.created:
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.folder.cleanup()


def measure_seed(url: str, size: int) -> tuple[float, int]:
    engine = make_engine(url)
    started = time.perf_counter()
    result = seed_demo(session_factory(engine), size=size, seed=1)
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed, result.participants + result.locations


def measure_bare_driver(url: str, size: int) -> tuple[float, int]:
    engine = make_engine(url)
    with Session(engine) as session:
        areas = residential_areas(session)
    chunks = list(population_chunks(areas, size, random.Random(1), 1, 1))
    sqlite = engine.dialect.name == "sqlite"
    ready = [([_driver_row(row, sqlite) for row in people],
              [_driver_row(row, sqlite) for row in places]) for people, places in chunks]
    rows = sum(len(p) + len(q) for p, q in ready)
    raw = engine.raw_connection()
    started = time.perf_counter()
    cursor = raw.cursor()
    if sqlite:
        cursor.execute("BEGIN")  # our engine leaves transactions to SQLAlchemy
    for people, places in ready:
        for table, columns, batch in ((Participant.__table__, PARTICIPANT_COLUMNS, people),
                                      (ParticipantLocation.__table__, LOCATION_COLUMNS, places)):
            names = ", ".join(columns)
            if sqlite:
                marks = ", ".join("?" for _ in columns)
                cursor.executemany(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", batch)
            else:
                with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
                    for row in batch:
                        copy.write_row(row)
    raw.commit()
    elapsed = time.perf_counter() - started
    raw.close()
    engine.dispose()
    return elapsed, rows


def _driver_row(row: tuple, sqlite: bool) -> tuple:
    converted = []
    for value in row:
        if isinstance(value, dict):
            value = json.dumps(value)
        elif sqlite and hasattr(value, "astimezone"):
            value = value.replace(tzinfo=None).isoformat(" ")
        converted.append(value)
    return tuple(converted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--participants", type=int, default=200_000)
    parser.add_argument("--server-url", help="PostgreSQL server URL (default: SQLite files)")
    args = parser.parse_args()
    databases = Databases(args.server_url)
    try:
        backend = "PostgreSQL" if args.server_url else "SQLite"
        seed_seconds, seed_rows = measure_seed(databases.new(), args.participants)
        bare_seconds, bare_rows = measure_bare_driver(databases.new(), args.participants)
    finally:
        databases.close()
    seed_rate, bare_rate = seed_rows / seed_seconds, bare_rows / bare_seconds
    print(f"backend: {backend}, participants: {args.participants}")
    print(f"seed-demo:   {seed_rows} rows in {seed_seconds:.2f} s = {seed_rate:,.0f} rows/s")
    print(f"bare driver: {bare_rows} rows in {bare_seconds:.2f} s = {bare_rate:,.0f} rows/s")
    print(f"ratio seed-demo / bare driver: {seed_rate / bare_rate:.2f}")
    estimate = seed_seconds * 1_600_000 / args.participants
    print(f"estimate for 1,600,000 participants: {estimate:.0f} s")


if __name__ == "__main__":
    main()
