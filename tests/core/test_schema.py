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


def test_existing_api_keys_get_the_default_scopes_of_their_organisations_kind(
        new_database_url: Callable[[], str]) -> None:
    """Keys made before scopes existed could make anything; after the migration each has
    what a new key of its organisation's kind gets, and no national AMBER Alert."""
    from alembic import command
    from alembic.script import ScriptDirectory

    from core.schema import alembic_config

    engine = make_engine(new_database_url())
    script = ScriptDirectory.from_config(alembic_config())
    scopes = next(rev for rev in script.walk_revisions()
                  if rev.path.endswith("_api_token_scopes.py"))
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, str(scopes.down_revision))
        for number, kind in enumerate(("police", "municipality", "fire", "ambulance"), 1):
            connection.execute(text(
                "INSERT INTO organisation (id, kind, name) VALUES (:id, :kind, :name)"),
                {"id": number, "kind": kind, "name": f"{kind} {number}"})
            connection.execute(text(
                "INSERT INTO api_token (name, token_hash, organisation_id, created_at) "
                "VALUES (:name, :hash, :id, CURRENT_TIMESTAMP)"),
                {"name": kind, "hash": f"{number:064d}", "id": number})
        command.upgrade(config, scopes.revision)
    with engine.connect() as connection:
        found = dict(connection.execute(text("SELECT name, scopes FROM api_token")).all())
    engine.dispose()
    assert found == {"police": "suspect vehicle missing_person amber",
                     "municipality": "neighbourhood_inquiry preventive",
                     "fire": "preventive", "ambulance": "preventive"}
    from core.models import OrganisationKind
    from core.permissions import DEFAULT_SCOPES, scope_text

    assert found == {kind.value: scope_text(DEFAULT_SCOPES[kind]) for kind in OrganisationKind}
