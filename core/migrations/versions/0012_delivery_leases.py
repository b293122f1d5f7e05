"""short leases and unknown outcomes: delivery status `unknown`, an index for the sweeps

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-14

A delivery whose request went out without an answer (a timeout, a connection reset), or that
a dead worker left in `sending`, is `unknown` until the provider has been asked whether it took
it. A claim's lease is now seconds long and renewed while its worker lives, so every worker
looks for expired leases and due look-ups every few seconds: an index on (status,
next_attempt_at) keeps that a range scan however large the outbox.
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

OLD = ("queued", "sending", "sent", "delivered", "answered", "voicemail", "failed", "skipped")
NEW = ("queued", "sending", "unknown", "sent", "delivered", "answered", "voicemail", "failed",
       "skipped")


#: SQLite rebuilds the table: it stays AUTOINCREMENT (migration 0011).
NEVER_REUSED = {"sqlite_autoincrement": True}


def _status_check(values: tuple[str, ...]) -> str:
    return "status IN (" + ", ".join(f"'{value}'" for value in values) + ")"


def upgrade() -> None:
    with op.batch_alter_table("delivery", table_kwargs=NEVER_REUSED) as batch:
        batch.drop_constraint(batch.f("ck_delivery_deliverystatus"), type_="check")
        batch.create_check_constraint(batch.f("ck_delivery_deliverystatus"), _status_check(NEW))
    op.create_index("ix_delivery_status_due", "delivery", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_delivery_status_due", table_name="delivery")
    # not known to be sent: a worker of the old release tries it again after its lease
    op.execute("UPDATE delivery SET status = 'sending' WHERE status = 'unknown'")
    with op.batch_alter_table("delivery", table_kwargs=NEVER_REUSED) as batch:
        batch.drop_constraint(batch.f("ck_delivery_deliverystatus"), type_="check")
        batch.create_check_constraint(batch.f("ck_delivery_deliverystatus"), _status_check(OLD))
