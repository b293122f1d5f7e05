"""Schema versions: upgrade the database to this code's migrations, or refuse clearly."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from core.db import check_connection, redact
from core.errors import DatabaseError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: Kept by the database and outside the ORM: PostGIS, its generated point and index.
DATABASE_ONLY = {"geom", "ix_participant_location_geom", "spatial_ref_sys"}


def include_object(obj: object, name: str | None, type_: str, reflected: bool,
                   compare_to: object) -> bool:
    """Alembic filter: leave the database-only columns and indexes out of comparisons."""
    return name not in DATABASE_ONLY


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic config for our migrations, bound to ENGINE's URL when given."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        config.set_main_option("sqlalchemy.url",
                               engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest migration this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def ensure_schema(engine: Engine, *, upgrade: bool = True) -> str:
    """Bring the schema to head (or check it is there); returns what was done, in one line."""
    check_connection(engine)
    script = ScriptDirectory.from_config(alembic_config())
    head = head_revision()
    current = current_revision(engine)
    if current == head:
        return f"schema is current ({head})"
    if current is not None and current not in {rev.revision for rev in script.walk_revisions()}:
        raise DatabaseError(
            f"{redact(str(engine.url))} is at schema revision {current}, which this version "
            f"does not know (a newer release wrote it); refusing to start")
    if not upgrade:
        raise DatabaseError(
            f"{redact(str(engine.url))} is at schema revision {current or 'none'}, this version "
            f"needs {head}; run `burgernet db upgrade` or set AUTO_MIGRATE=1")
    config = alembic_config(engine)
    with engine.connect() as connection, _sqlite_foreign_keys_off(connection), \
            connection.begin():
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        _check_foreign_keys(connection)
    return f"schema upgraded from {current or 'empty'} to {head}"


def prepare_schema(engine: Engine, *, upgrade: bool) -> None:
    """`ensure_schema` at a process's start, logged: at INFO when it upgraded, else at DEBUG."""
    message = ensure_schema(engine, upgrade=upgrade)
    log = logging.getLogger("burgernet")
    log.log(logging.INFO if "upgraded" in message else logging.DEBUG, message)


@contextmanager
def _sqlite_foreign_keys_off(connection: Connection) -> Iterator[None]:
    """SQLite changes a table by building a new one and dropping the old: with foreign keys
    on, that drop would delete (ON DELETE CASCADE) or orphan every row that refers to it. The
    pragma works only outside a transaction, so it is set before the migrations begin."""
    if connection.dialect.name != "sqlite":
        yield
        return
    raw = connection.connection.driver_connection
    assert raw is not None
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        raw.execute("PRAGMA foreign_keys=ON")


def _check_foreign_keys(connection: Connection) -> None:
    """Refuse (and roll back) migrations that left a row pointing at nothing (SQLite)."""
    if connection.dialect.name != "sqlite":
        return
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        tables = sorted({row[0] for row in broken})
        raise DatabaseError(f"the schema upgrade left rows without their referenced row in "
                            f"{', '.join(tables)}; nothing was changed")
