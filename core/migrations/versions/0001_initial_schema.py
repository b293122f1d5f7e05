"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23
"""

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('meldkamer',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=4), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('police_unit', sa.String(length=120), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=True),
    sa.Column('sip_uri', sa.String(length=255), nullable=True),
    sa.Column('fallback_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['fallback_id'], ['meldkamer.id'], name=op.f('fk_meldkamer_fallback_id_meldkamer')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meldkamer')),
    sa.UniqueConstraint('code', name=op.f('uq_meldkamer_code'))
    )
    op.create_table('participant',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('language', sa.Enum('nl', 'en', name='language', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('channels', sa.Integer(), nullable=False),
    sa.Column('quiet_hours', sa.JSON(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'verified', 'stopped', name='participantstatus', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('consent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('channels >= 0 AND channels < 16', name=op.f('ck_participant_channels_mask')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_participant')),
    sa.UniqueConstraint('phone', name=op.f('uq_participant_phone'))
    )
    with op.batch_alter_table('participant', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_participant_status'), ['status'], unique=False)

    op.create_table('safety_region',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=4), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('meldkamer_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['meldkamer_id'], ['meldkamer.id'], name=op.f('fk_safety_region_meldkamer_id_meldkamer')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_safety_region')),
    sa.UniqueConstraint('code', name=op.f('uq_safety_region_code'))
    )
    op.create_table('municipality',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=6), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('province', sa.String(length=40), nullable=True),
    sa.Column('population', sa.Integer(), nullable=True),
    sa.Column('safety_region_id', sa.Integer(), nullable=False),
    sa.Column('centroid_lat', sa.Float(), nullable=False),
    sa.Column('centroid_lon', sa.Float(), nullable=False),
    sa.Column('boundary', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['safety_region_id'], ['safety_region.id'], name=op.f('fk_municipality_safety_region_id_safety_region')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_municipality')),
    sa.UniqueConstraint('code', name=op.f('uq_municipality_code'))
    )
    with op.batch_alter_table('municipality', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_municipality_safety_region_id'), ['safety_region_id'], unique=False)

    op.create_table('organisation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('police', 'municipality', 'fire', 'ambulance', name='organisationkind', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('name', sa.String(length=160), nullable=False),
    sa.Column('meldkamer_id', sa.Integer(), nullable=True),
    sa.Column('municipality_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['meldkamer_id'], ['meldkamer.id'], name=op.f('fk_organisation_meldkamer_id_meldkamer')),
    sa.ForeignKeyConstraint(['municipality_id'], ['municipality.id'], name=op.f('fk_organisation_municipality_id_municipality')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organisation')),
    sa.UniqueConstraint('name', name=op.f('uq_organisation_name'))
    )
    op.create_table('participant_location',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('home', 'work', 'current', name='locationkind', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('pc4', sa.String(length=4), nullable=True),
    sa.Column('municipality_id', sa.Integer(), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180', name=op.f('ck_participant_location_coordinates')),
    sa.ForeignKeyConstraint(['municipality_id'], ['municipality.id'], name=op.f('fk_participant_location_municipality_id_municipality')),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], name=op.f('fk_participant_location_participant_id_participant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_participant_location'))
    )
    with op.batch_alter_table('participant_location', schema=None) as batch_op:
        batch_op.create_index('ix_participant_location_lat_lon', ['lat', 'lon'], unique=False)
        batch_op.create_index(batch_op.f('ix_participant_location_municipality_id'), ['municipality_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_participant_location_participant_id'), ['participant_id'], unique=False)

    op.create_table('postcode',
    sa.Column('pc4', sa.String(length=4), nullable=False),
    sa.Column('place', sa.String(length=120), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('municipality_id', sa.Integer(), nullable=False),
    sa.Column('assignment', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['municipality_id'], ['municipality.id'], name=op.f('fk_postcode_municipality_id_municipality')),
    sa.PrimaryKeyConstraint('pc4', name=op.f('pk_postcode'))
    )
    with op.batch_alter_table('postcode', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_postcode_municipality_id'), ['municipality_id'], unique=False)

    op.create_table('user_account',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('name', sa.String(length=160), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.Enum('admin', 'centralist', 'municipality_officer', name='role', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisation.id'], name=op.f('fk_user_account_organisation_id_organisation')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_account')),
    sa.UniqueConstraint('email', name=op.f('uq_user_account_email'))
    )
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_account_organisation_id'), ['organisation_id'], unique=False)

    op.create_table('action',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('suspect', 'vehicle', 'missing_person', 'amber', 'neighbourhood_inquiry', 'preventive', name='actionkind', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('urgency', sa.Enum('urgent', 'normal', name='urgency', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('status', sa.Enum('draft', 'active', 'ended', name='actionstatus', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('title_nl', sa.String(length=200), nullable=False),
    sa.Column('title_en', sa.String(length=200), nullable=True),
    sa.Column('description_nl', sa.Text(), nullable=False),
    sa.Column('description_en', sa.Text(), nullable=True),
    sa.Column('instruction_nl', sa.Text(), nullable=False),
    sa.Column('instruction_en', sa.Text(), nullable=True),
    sa.Column('center_lat', sa.Float(), nullable=True),
    sa.Column('center_lon', sa.Float(), nullable=True),
    sa.Column('radius_m', sa.Float(), nullable=True),
    sa.Column('polygon', sa.JSON(), nullable=True),
    sa.Column('meldkamer_id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('creator_id', sa.Integer(), nullable=True),
    sa.Column('outcome', sa.Enum('found', 'arrested', 'not_found', 'cancelled', name='outcome', native_enum=False, create_constraint=True, length=24), nullable=True),
    sa.Column('outcome_text', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('(radius_m IS NULL) = (center_lat IS NULL) AND (center_lat IS NULL) = (center_lon IS NULL)', name=op.f('ck_action_circle_complete')),
    sa.CheckConstraint('radius_m IS NULL OR radius_m > 0', name=op.f('ck_action_radius_positive')),
    sa.ForeignKeyConstraint(['creator_id'], ['user_account.id'], name=op.f('fk_action_creator_id_user_account')),
    sa.ForeignKeyConstraint(['meldkamer_id'], ['meldkamer.id'], name=op.f('fk_action_meldkamer_id_meldkamer')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisation.id'], name=op.f('fk_action_organisation_id_organisation')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_action'))
    )
    with op.batch_alter_table('action', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_action_meldkamer_id'), ['meldkamer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_action_organisation_id'), ['organisation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_action_status'), ['status'], unique=False)

    op.create_table('audit_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=160), nullable=False),
    sa.Column('verb', sa.String(length=64), nullable=False),
    sa.Column('object_type', sa.String(length=40), nullable=False),
    sa.Column('object_id', sa.String(length=64), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('ip', sa.String(length=45), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_audit_event_user_id_user_account'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_event'))
    )
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_event_at'), ['at'], unique=False)
        batch_op.create_index('ix_audit_event_object', ['object_type', 'object_id'], unique=False)

    op.create_table('call_record',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('direction', sa.Enum('inbound', 'outbound', name='calldirection', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('transport', sa.String(length=16), nullable=False),
    sa.Column('provider_call_id', sa.String(length=64), nullable=True),
    sa.Column('caller', sa.String(length=40), nullable=True),
    sa.Column('called', sa.String(length=255), nullable=True),
    sa.Column('participant_id', sa.Integer(), nullable=True),
    sa.Column('meldkamer_id', sa.Integer(), nullable=True),
    sa.Column('action_id', sa.Integer(), nullable=True),
    sa.Column('routing_reason', sa.String(length=255), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('connected_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['action_id'], ['action.id'], name=op.f('fk_call_record_action_id_action')),
    sa.ForeignKeyConstraint(['meldkamer_id'], ['meldkamer.id'], name=op.f('fk_call_record_meldkamer_id_meldkamer')),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], name=op.f('fk_call_record_participant_id_participant'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_call_record'))
    )
    with op.batch_alter_table('call_record', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_call_record_action_id'), ['action_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_call_record_provider_call_id'), ['provider_call_id'], unique=False)

    op.create_table('delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('action_id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.Enum('voice', 'sms', 'email', 'push', name='channel', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('purpose', sa.Enum('alert', 'result', 'update', name='deliverypurpose', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('language', sa.Enum('nl', 'en', name='language', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('status', sa.Enum('queued', 'sending', 'sent', 'delivered', 'answered', 'failed', 'skipped', name='deliverystatus', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=True),
    sa.Column('provider_id', sa.String(length=64), nullable=True),
    sa.Column('provider_error', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['action_id'], ['action.id'], name=op.f('fk_delivery_action_id_action')),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], name=op.f('fk_delivery_participant_id_participant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delivery')),
    sa.UniqueConstraint('action_id', 'participant_id', 'channel', 'purpose', name='uq_delivery_once')
    )
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.create_index('ix_delivery_action_status', ['action_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_delivery_participant_id'), ['participant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_delivery_provider_id'), ['provider_id'], unique=False)

    op.create_table('tip',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('action_id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('media_path', sa.String(length=255), nullable=True),
    sa.Column('media_type', sa.String(length=64), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['action_id'], ['action.id'], name=op.f('fk_tip_action_id_action')),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], name=op.f('fk_tip_participant_id_participant'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tip'))
    )
    with op.batch_alter_table('tip', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tip_action_id'), ['action_id'], unique=False)

    


def downgrade() -> None:
    
    with op.batch_alter_table('tip', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tip_action_id'))

    op.drop_table('tip')
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delivery_provider_id'))
        batch_op.drop_index(batch_op.f('ix_delivery_participant_id'))
        batch_op.drop_index('ix_delivery_action_status')

    op.drop_table('delivery')
    with op.batch_alter_table('call_record', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_call_record_provider_call_id'))
        batch_op.drop_index(batch_op.f('ix_call_record_action_id'))

    op.drop_table('call_record')
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_event_object')
        batch_op.drop_index(batch_op.f('ix_audit_event_at'))

    op.drop_table('audit_event')
    with op.batch_alter_table('action', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_action_status'))
        batch_op.drop_index(batch_op.f('ix_action_organisation_id'))
        batch_op.drop_index(batch_op.f('ix_action_meldkamer_id'))

    op.drop_table('action')
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_account_organisation_id'))

    op.drop_table('user_account')
    with op.batch_alter_table('postcode', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_postcode_municipality_id'))

    op.drop_table('postcode')
    with op.batch_alter_table('participant_location', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_participant_location_participant_id'))
        batch_op.drop_index(batch_op.f('ix_participant_location_municipality_id'))
        batch_op.drop_index('ix_participant_location_lat_lon')

    op.drop_table('participant_location')
    op.drop_table('organisation')
    with op.batch_alter_table('municipality', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_municipality_safety_region_id'))

    op.drop_table('municipality')
    op.drop_table('safety_region')
    with op.batch_alter_table('participant', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_participant_status'))

    op.drop_table('participant')
    op.drop_table('meldkamer')
    
