"""webhook replays and answering-machine detection

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10

A replayed Twilio webhook must not add a second call record or tip: one call record per
(provider call id, transport, direction), one tip per (message id, part). Records that were
already doubled keep every row; the later ones get "#<id>" after their call id. A voice message
left on an answering machine is a delivery of its own status, `voicemail`.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

OLD = ("queued", "sending", "sent", "delivered", "answered", "failed", "skipped")
NEW = ("queued", "sending", "sent", "delivered", "answered", "voicemail", "failed", "skipped")


def _status_check(values: tuple[str, ...]) -> str:
    return "status IN (" + ", ".join(f"'{value}'" for value in values) + ")"


def upgrade() -> None:
    op.execute("""
        UPDATE call_record SET provider_call_id = provider_call_id || '#' || CAST(id AS VARCHAR)
        WHERE provider_call_id IS NOT NULL AND id NOT IN (
            SELECT MIN(id) FROM call_record WHERE provider_call_id IS NOT NULL
            GROUP BY provider_call_id, transport, direction)
    """)
    with op.batch_alter_table("call_record") as batch:
        batch.create_unique_constraint(
            batch.f("uq_call_record_call"), ["provider_call_id", "transport", "direction"])
    with op.batch_alter_table("tip") as batch:
        batch.add_column(sa.Column("message_sid", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("message_part", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.create_unique_constraint(batch.f("uq_tip_message"),
                                       ["message_sid", "message_part"])
    with op.batch_alter_table("delivery") as batch:
        batch.drop_constraint(batch.f("ck_delivery_deliverystatus"), type_="check")
        batch.create_check_constraint(batch.f("ck_delivery_deliverystatus"), _status_check(NEW))


def downgrade() -> None:
    op.execute("UPDATE delivery SET status = 'answered' WHERE status = 'voicemail'")
    with op.batch_alter_table("delivery") as batch:
        batch.drop_constraint(batch.f("ck_delivery_deliverystatus"), type_="check")
        batch.create_check_constraint(batch.f("ck_delivery_deliverystatus"), _status_check(OLD))
    with op.batch_alter_table("tip") as batch:
        batch.drop_constraint(batch.f("uq_tip_message"), type_="unique")
        batch.drop_column("message_part")
        batch.drop_column("message_sid")
    with op.batch_alter_table("call_record") as batch:
        batch.drop_constraint(batch.f("uq_call_record_call"), type_="unique")
