"""API keys get scopes: which action kinds they may make, and a national AMBER Alert

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

Until now a key could make every kind of action, nationally, whatever its organisation. An
existing key gets the scopes a new key of its organisation's kind gets by default
(core.permissions.DEFAULT_SCOPES, written out here as they were at this revision): police the
search kinds and a regional AMBER Alert; a municipality neighbourhood inquiries and preventive
messages; fire and ambulance services preventive messages. A national AMBER Alert, and for
the police inquiries and preventive messages, must be granted again explicitly
(`burgernet api token scopes <id> --scope ...`). Downgrading drops the scopes.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

DEFAULTS = {
    "police": "suspect vehicle missing_person amber",
    "municipality": "neighbourhood_inquiry preventive",
    "fire": "preventive",
    "ambulance": "preventive",
}


def upgrade() -> None:
    with op.batch_alter_table("api_token") as batch:
        batch.add_column(sa.Column("scopes", sa.String(length=255), nullable=False,
                                   server_default=""))
    for kind, scopes in DEFAULTS.items():
        op.execute(sa.text(
            "UPDATE api_token SET scopes = :scopes WHERE organisation_id IN "
            "(SELECT id FROM organisation WHERE kind = :kind)").bindparams(
                scopes=scopes, kind=kind))


def downgrade() -> None:
    with op.batch_alter_table("api_token") as batch:
        batch.drop_column("scopes")
