"""console: action photo, national AMBER, inquiry updates and reactions, API tokens

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("action") as batch:
        batch.add_column(sa.Column("national", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("photo_path", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("photo_type", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("update_nl", sa.Text(), nullable=True))
        batch.add_column(sa.Column("update_en", sa.Text(), nullable=True))
    op.create_table(
        "inquiry_reaction",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("action_id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("contact", sa.String(length=254), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["action_id"], ["action.id"],
                                name=op.f("fk_inquiry_reaction_action_id_action")),
        sa.ForeignKeyConstraint(["delivery_id"], ["delivery.id"],
                                name=op.f("fk_inquiry_reaction_delivery_id_delivery"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inquiry_reaction")),
        sa.UniqueConstraint("delivery_id", name=op.f("uq_inquiry_reaction_delivery_id")),
    )
    with op.batch_alter_table("inquiry_reaction") as batch:
        batch.create_index(batch.f("ix_inquiry_reaction_action_id"), ["action_id"])
    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisation.id"],
                                name=op.f("fk_api_token_organisation_id_organisation")),
        sa.ForeignKeyConstraint(["created_by_id"], ["user_account.id"],
                                name=op.f("fk_api_token_created_by_id_user_account"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_token_token_hash")),
    )
    with op.batch_alter_table("api_token") as batch:
        batch.create_index(batch.f("ix_api_token_organisation_id"), ["organisation_id"])


def downgrade() -> None:
    op.drop_table("api_token")
    op.drop_table("inquiry_reaction")
    with op.batch_alter_table("action") as batch:
        for column in ("update_en", "update_nl", "photo_type", "photo_path", "national"):
            batch.drop_column(column)
