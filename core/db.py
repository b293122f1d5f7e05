"""Engine and session factory: the one place that turns a database URL into connections."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import JSON, Connection, DateTime, Engine, Table, create_engine, event, text
from sqlalchemy.engine import CursorResult, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import Executable

from core.errors import DatabaseError

SUPPORTED = {"sqlite", "postgresql"}


def redact(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for URL, checked: a bad URL or unreachable server raises DatabaseError."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"DATABASE_URL {url!r} is not a database URL "
                            "(expected e.g. sqlite:///var/burgernet.sqlite3)") from None
    if parsed.get_backend_name() not in SUPPORTED:
        raise DatabaseError(f"DATABASE_URL {redact(url)}: backend "
                            f"{parsed.get_backend_name()!r} is not supported "
                            "(sqlite or postgresql)")
    kwargs: dict[str, Any] = {"echo": echo}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30}
    else:
        if parsed.get_driver_name() == "psycopg2" and "+" not in parsed.drivername:
            parsed = parsed.set(drivername="postgresql+psycopg")
        # PostgreSQL's JIT adds 90-300 ms to area queries and saves nothing at our sizes.
        kwargs["connect_args"] = {"options": "-c jit=off"}
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(parsed, **kwargs)
    except NoSuchModuleError:
        raise DatabaseError(f"DATABASE_URL {redact(url)}: driver "
                            f"{parsed.drivername!r} is not installed") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINT; SQLAlchemy emits BEGIN instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # A deferred transaction that reads, then writes, fails at once with "database is locked"
    # when another writer committed in between (WAL snapshot); writers ask for the lock first.
    immediate = connection.get_execution_options().get("sqlite_immediate")
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def check_connection(engine: Engine) -> None:
    """Connect once, so that a wrong host or password is reported before any work starts."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise DatabaseError(f"cannot connect to {redact(str(engine.url))}: {reason}") from None


def session_factory(engine: Engine, *, writer: bool = False) -> sessionmaker[Session]:
    """Sessions bound to ENGINE; callers own commit and rollback. WRITER sessions take
    SQLite's write lock when they begin, so concurrent writers wait instead of failing."""
    bind = engine.execution_options(sqlite_immediate=True) if writer else engine
    return sessionmaker(bind, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits when the block ends normally and rolls back otherwise."""
    with factory() as session, session.begin():
        yield session


def changed_rows(session: Session, statement: Executable) -> int:
    """Run an UPDATE or DELETE and say how many rows it changed (`Session.execute` is typed as
    returning a plain Result, which has no rowcount, though it is a CursorResult here)."""
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def bulk_insert(connection: Connection, table: Table, columns: Sequence[str],
                rows: Iterable[Sequence[Any]], *, skip_existing: bool = False) -> None:
    """Insert many rows at driver speed: COPY on PostgreSQL, one executemany on SQLite.

    Bypasses SQLAlchemy's per-value processing (it dominates at a million rows), so values
    are converted here per column type: aware datetimes, JSON-able objects, enums as strings.
    With SKIP_EXISTING, rows that collide with a unique key are left out (slower on
    PostgreSQL, where COPY cannot do that): for resuming an interrupted write.
    """
    names = ", ".join(columns)
    convert = [_bulk_converter(table.c[name].type, connection.dialect.name) for name in columns]
    prepared = [tuple(f(value) if f else value for f, value in zip(convert, row, strict=True))
                for row in rows]
    if not prepared:
        return
    if skip_existing:
        postgres = connection.dialect.name == "postgresql"
        marks = ", ".join(("%s" if postgres else "?") for _ in columns)
        verb, tail = ("INSERT", " ON CONFLICT DO NOTHING") if postgres else ("INSERT OR IGNORE", "")
        raw = connection.connection.driver_connection
        assert raw is not None
        cursor = raw.cursor()
        cursor.executemany(f"{verb} INTO {table.name} ({names}) VALUES ({marks}){tail}",
                           prepared)
        cursor.close()
        return
    if connection.dialect.name == "postgresql":
        raw = connection.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cursor, cursor.copy(
                f"COPY {table.name} ({names}) FROM STDIN") as copy:
            for row in prepared:
                copy.write_row(row)
        if "id" in columns:
            # explicit ids leave the serial sequence behind: the next ORM insert would
            # collide with them. Never backwards, though: that would reuse deleted ids.
            connection.exec_driver_sql(
                f"SELECT setval(s, GREATEST(COALESCE(pg_sequence_last_value(s), 0), "
                f"(SELECT max(id) FROM {table.name}))) "
                f"FROM (SELECT pg_get_serial_sequence('{table.name}', 'id')::regclass AS s) q")
    else:
        marks = ", ".join("?" for _ in columns)
        connection.exec_driver_sql(f"INSERT INTO {table.name} ({names}) VALUES ({marks})",
                                   prepared)


def reserve_ids(connection: Connection, table: Table, count: int) -> int:
    """The first of COUNT consecutive ids for rows that `bulk_insert` writes with explicit
    ids: above every id TABLE ever gave out, not just above the rows left (a deleted row's id
    must not come back). On PostgreSQL the sequence moves past them."""
    if count < 1:
        raise ValueError(f"reserve at least one id, not {count}")
    name = table.name
    if connection.dialect.name == "postgresql":
        last = connection.exec_driver_sql(
            f"SELECT setval(s, GREATEST(COALESCE(pg_sequence_last_value(s), 0), "
            f"COALESCE((SELECT max(id) FROM {name}), 0)) + %(count)s) "
            f"FROM (SELECT pg_get_serial_sequence('{name}', 'id')::regclass AS s) q",
            {"count": count}).scalar_one()
        return int(last) - count + 1
    # SQLite keeps the highest id ever used in sqlite_sequence for AUTOINCREMENT tables (and
    # raises it itself when a larger id is inserted); other tables reuse ids anyway.
    used = connection.exec_driver_sql(
        f"SELECT max(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = ?), 0), "
        f"COALESCE((SELECT max(id) FROM {name}), 0))", (name,)).scalar_one()
    return int(used) + 1


def _bulk_converter(column_type: Any, dialect: str) -> Callable[[Any], Any] | None:
    if isinstance(column_type, JSON):
        return lambda value: None if value is None else json.dumps(value)
    if isinstance(column_type, DateTime) or isinstance(
            getattr(column_type, "impl", None), DateTime):
        return sqlite_datetime if dialect == "sqlite" else None
    return None


def sqlite_datetime(value: datetime | None) -> str | None:
    """The text SQLAlchemy's SQLite dialect stores for a datetime (naive UTC)."""
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", timespec="microseconds")
