"""Schema versions: upgrade the database to this code's migrations, or refuse clearly."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

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
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return f"schema upgraded from {current or 'empty'} to {head}"
