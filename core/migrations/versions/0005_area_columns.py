"""area selection by columns: on SQLite an index on (longitude cell, lat, ...) replaces the
one on (lat, lon, ...); on PostgreSQL the GiST index becomes the table's clustering index

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23

The area query reads a circle column by column, each 1/20 degree of longitude wide: on SQLite
one range of the new index per column, instead of the whole band of latitude across the
country. PostgreSQL does not use the B-tree (its GiST index answers the area query), so it is
dropped there. `CLUSTER participant_location` then orders the table along the GiST index, so
that an area's locations share few heap pages (seed-demo does it after loading).
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = "lat, lon, participant_id, municipality_id, expires_at, status, channels, language"


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_participant_location_lat_lon")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE participant_location CLUSTER ON ix_participant_location_geom")
    else:
        op.execute("CREATE INDEX ix_participant_location_cell ON participant_location "
                   f"(CAST(lon * 20 AS INTEGER), {COLUMNS})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE participant_location SET WITHOUT CLUSTER")
    else:
        op.execute("DROP INDEX IF EXISTS ix_participant_location_cell")
    op.execute(f"CREATE INDEX ix_participant_location_lat_lon ON participant_location ({COLUMNS})")
