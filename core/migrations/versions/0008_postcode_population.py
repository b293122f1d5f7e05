"""reference data of December 2026: inhabitants per PC4, longer assignment rules

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

The rebuilt pc4.csv gives every postcode its inhabitants (CBS, 1 January 2021) and names the
rule that decided its municipality in up to 22 characters (`cbs-pc4+geonames-point`).
`burgernet load-reference` fills the new column; until then it is 0.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("postcode") as batch:
        batch.add_column(sa.Column("population", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.alter_column("assignment", existing_type=sa.String(length=16),
                           type_=sa.String(length=32), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("postcode") as batch:
        batch.alter_column("assignment", existing_type=sa.String(length=32),
                           type_=sa.String(length=16), existing_nullable=False)
        batch.drop_column("population")
