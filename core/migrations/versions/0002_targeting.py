"""targeting: SMS verification state; on PostgreSQL a PostGIS point per location

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("participant") as batch:
        batch.add_column(sa.Column("code_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("code_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("code_attempts", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("code_sent_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("code_sends", sa.Integer(), nullable=False,
                                   server_default="0"))
    if op.get_bind().dialect.name == "postgresql":
        _postgis_point()


def _postgis_point() -> None:
    """A point in RD New (EPSG:28992, metres), kept by the database itself, with a GiST index."""
    bind = op.get_bind()
    available = bind.exec_driver_sql(
        "SELECT count(*) FROM pg_available_extensions WHERE name = 'postgis'").scalar()
    if not available:
        raise RuntimeError("PostgreSQL lacks the PostGIS extension: install it "
                           "(Debian: apt-get install postgresql-15-postgis-3)")
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.execute(
        "ALTER TABLE participant_location ADD COLUMN geom geometry(Point, 28992) "
        "GENERATED ALWAYS AS (ST_Transform(ST_SetSRID(ST_MakePoint(lon, lat), 4326), 28992)) "
        "STORED")
    op.execute("CREATE INDEX ix_participant_location_geom ON participant_location "
               "USING gist (geom)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_participant_location_geom")
        op.execute("ALTER TABLE participant_location DROP COLUMN IF EXISTS geom")
    with op.batch_alter_table("participant") as batch:
        for column in ("code_sends", "code_sent_at", "code_attempts", "code_expires_at",
                       "code_hash"):
            batch.drop_column(column)
