"""sessions: a session key per user and participant; ids that are never reused

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08

Every web session of a staff user or a participant carries the person's `session_key`;
changing or clearing it ends all their sessions (log-out, a new password), and a session of
someone whose row was deleted cannot open the row of whoever comes next.

The ids of people, authorities and what links and jobs name are never handed out twice.
PostgreSQL's sequences already see to that; SQLite reuses the highest id after a delete
unless the table is declared AUTOINCREMENT, which takes a rebuild of the table. core.schema
runs migrations on SQLite with foreign keys off, so dropping the old table cascades nothing.
A rebuilt table continues above its highest row and above the highest id the audit trail
says was deleted (a participant's "delete my data", a discarded draft); other rows deleted
before this migration, above the highest one left, could be given out once more.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

NEVER_REUSED = ("user_account", "participant", "push_subscription", "action", "delivery",
                "api_token")
COPIED = ("status", "channels", "language")
#: Deletions the audit trail records: table, object_type, verb.
AUDITED_DELETES = (("participant", "participant", "delete"), ("action", "action", "discard"))


def upgrade() -> None:
    for table in ("user_account", "participant"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("session_key", sa.String(64), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(autoincrement=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(autoincrement=False)
        return
    for table in ("participant", "user_account"):
        op.drop_column(table, "session_key")


def _rebuild(*, autoincrement: bool) -> None:
    """Rebuild the tables with or without AUTOINCREMENT (and, going back, without the session
    keys). The triggers of migration 0002 go first and come back after: renaming the new
    participant table into place fails while a trigger names a table that is, for that
    moment, missing."""
    for trigger in ("participant_reach", "location_reach", "location_reach_moved"):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    for table in NEVER_REUSED:
        with op.batch_alter_table(table, recreate="always",
                                  table_kwargs={"sqlite_autoincrement": autoincrement}) as batch:
            if not autoincrement and table in ("user_account", "participant"):
                batch.drop_column("session_key")
    if autoincrement:
        _continue_after_audited_deletes()
    _sqlite_triggers()


def _continue_after_audited_deletes() -> None:
    for table, object_type, verb in AUDITED_DELETES:
        op.execute(f"""UPDATE sqlite_sequence SET seq = max(seq, COALESCE((
            SELECT max(CAST(object_id AS INTEGER)) FROM audit_event
            WHERE object_type = '{object_type}' AND verb = '{verb}'), 0))
            WHERE name = '{table}'""")
        op.execute(f"""INSERT INTO sqlite_sequence (name, seq)
            SELECT '{table}', deleted FROM (
                SELECT max(CAST(object_id AS INTEGER)) AS deleted FROM audit_event
                WHERE object_type = '{object_type}' AND verb = '{verb}')
            WHERE deleted IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = '{table}')""")


def _sqlite_triggers() -> None:
    """The triggers of migration 0002, as they were."""
    copy = ", ".join(f"{c} = NEW.{c}" for c in COPIED)
    fetch = ", ".join(f"{c} = (SELECT p.{c} FROM participant p WHERE p.id = NEW.participant_id)"
                      for c in COPIED)
    op.execute(f"""CREATE TRIGGER participant_reach AFTER UPDATE OF {', '.join(COPIED)}
        ON participant BEGIN
        UPDATE participant_location SET {copy} WHERE participant_id = NEW.id; END""")
    op.execute(f"""CREATE TRIGGER location_reach AFTER INSERT ON participant_location BEGIN
        UPDATE participant_location SET {fetch} WHERE id = NEW.id; END""")
    op.execute(f"""CREATE TRIGGER location_reach_moved AFTER UPDATE OF participant_id
        ON participant_location BEGIN
        UPDATE participant_location SET {fetch} WHERE id = NEW.id; END""")
