"""outbox_done_at: an action's outbox is written in committed chunks; this marks the end

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("action") as batch:
        batch.add_column(sa.Column("outbox_done_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE action SET outbox_done_at = started_at WHERE started_at IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("action") as batch:
        batch.drop_column("outbox_done_at")
