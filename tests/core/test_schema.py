from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, delete, insert, inspect, text

from core.db import make_engine
from core.errors import DatabaseError
from core.models import (
    Action,
    AuditEvent,
    Base,
    Delivery,
    Meldkamer,
    Organisation,
    Participant,
    ParticipantLocation,
)
from core.schema import (
    alembic_config,
    current_revision,
    ensure_schema,
    head_revision,
    include_object,
)

_NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


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


NEVER_REUSED = sorted(table.name for table in Base.metadata.sorted_tables
                      if table.dialect_options["sqlite"]["autoincrement"])


def test_the_tables_whose_ids_leave_the_database_never_reuse_them() -> None:
    """Session cookies, signed links, queued jobs, URLs and the audit trail name these ids."""
    assert NEVER_REUSED == ["action", "api_token", "delivery", "participant",
                            "push_subscription", "user_account"]


def test_a_deleted_participant_s_id_goes_to_no_one_else(db) -> None:
    first = Participant(phone="+31690000901")
    db.add(first)
    db.flush()
    gone = first.id
    db.delete(first)
    db.flush()
    second = Participant(phone="+31690000902")
    db.add(second)
    db.flush()
    assert second.id > gone


def test_the_migrated_database_declares_what_the_models_declare(engine: Engine) -> None:
    """Alembic does not compare AUTOINCREMENT: on SQLite, read it from the tables themselves."""
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's sequences never reuse an id")
    with engine.connect() as connection:
        declared = {name for name, sql in connection.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table'") if "AUTOINCREMENT" in sql}
    assert sorted(declared) == NEVER_REUSED


def test_upgrading_keeps_every_row_that_refers_to_a_rebuilt_table(
        new_database_url: Callable[[], str]) -> None:
    """SQLite rebuilds the tables for AUTOINCREMENT; with foreign keys on, dropping the old
    participant table would delete every location and message of every participant. The id
    of a participant who deleted their data just before goes to no one either."""
    engine = make_engine(new_database_url())
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0008")
    with engine.begin() as connection:
        meldkamer = connection.execute(
            insert(Meldkamer.__table__).values(code="MT", name="Meldkamer Test",
                                               police_unit="Politie Test")
            .returning(Meldkamer.__table__.c.id)).scalar_one()
        organisation = connection.execute(
            insert(Organisation.__table__).values(kind="police", name="Politie Test",
                                                  meldkamer_id=meldkamer)
            .returning(Organisation.__table__.c.id)).scalar_one()
        people = [connection.execute(insert(Participant.__table__).values(
            phone=f"+3169000091{n}", language="nl", channels=2, quiet_hours={},
            status="verified", code_attempts=0, code_sends=0, created_at=_NOW)
            .returning(Participant.__table__.c.id)).scalar_one() for n in range(3)]
        for person in people:
            connection.execute(insert(ParticipantLocation.__table__).values(
                participant_id=person, kind="home", lat=52.0, lon=5.0, country="NL",
                created_at=_NOW))
        action = connection.execute(insert(Action.__table__).values(
            kind="suspect", urgency="urgent", status="active", title_nl="t",
            description_nl="", instruction_nl="", meldkamer_id=meldkamer,
            organisation_id=organisation, national=False, created_at=_NOW)
            .returning(Action.__table__.c.id)).scalar_one()
        connection.execute(insert(Delivery.__table__).values(
            action_id=action, participant_id=people[0], channel="sms", purpose="alert",
            language="nl", status="queued", attempts=0, created_at=_NOW, updated_at=_NOW))
        connection.execute(delete(Participant.__table__)
                           .where(Participant.__table__.c.id == people[2]))
        connection.execute(insert(AuditEvent.__table__).values(
            at=_NOW, actor=f"participant:{people[2]}", verb="delete", object_type="participant",
            object_id=str(people[2]), details={}))
    ensure_schema(engine)
    with engine.begin() as connection:
        assert connection.scalar(text("SELECT count(*) FROM participant_location")) == 2
        assert connection.scalar(text("SELECT count(*) FROM delivery")) == 1
        # the location triggers of 0002 still copy the participant's status
        connection.execute(text("UPDATE participant SET status = 'stopped' WHERE id = :id"),
                           {"id": people[0]})
        assert connection.scalar(text(
            "SELECT status FROM participant_location WHERE participant_id = :id"),
            {"id": people[0]}) == "stopped"
        added = connection.execute(insert(Participant.__table__).values(
            phone="+31690000919", language="nl", channels=2, quiet_hours={},
            status="verified", code_attempts=0, code_sends=0, created_at=_NOW)
            .returning(Participant.__table__.c.id)).scalar_one()
    assert added > people[2]
    engine.dispose()
