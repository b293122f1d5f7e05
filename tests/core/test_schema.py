from collections.abc import Callable

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from core.db import make_engine
from core.errors import DatabaseError
from core.models import Base
from core.schema import current_revision, ensure_schema, head_revision, include_object


def test_migrations_create_exactly_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": include_object})
        assert compare_metadata(context, Base.metadata) == []


def test_an_empty_database_is_upgraded_then_left_alone(new_database_url: Callable[[], str]) -> None:
    engine = make_engine(new_database_url())
    assert ensure_schema(engine).startswith("schema upgraded from empty")
    assert ensure_schema(engine) == f"schema is current ({head_revision()})"
    assert {"participant", "delivery", "audit_event"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_without_auto_migrate_an_old_schema_is_refused(new_database_url: Callable[[], str]) -> None:
    engine = make_engine(new_database_url())
    with pytest.raises(DatabaseError, match="run `burgernet db upgrade`"):
        ensure_schema(engine, upgrade=False)
    assert current_revision(engine) is None
    engine.dispose()


def test_a_schema_from_a_newer_release_is_refused(new_database_url: Callable[[], str]) -> None:
    engine = make_engine(new_database_url())
    ensure_schema(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'f00dcafe'"))
    with pytest.raises(DatabaseError, match="f00dcafe, which this version does not know"):
        ensure_schema(engine)
    engine.dispose()
