"""events and rules

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 01:01:29.134055
"""
import sqlalchemy as sa
from alembic import op

import scheduler.store.models

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('occurred_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('received_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('response', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['team_id'], ['team.id'], name=op.f('fk_event_team_id_team'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event')),
    sa.UniqueConstraint('team_id', 'external_id', name='uq_event_team_external')
    )
    op.create_table('rule',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('event', sa.String(length=100), nullable=False),
    sa.Column('conditions', sa.JSON(), nullable=False),
    sa.Column('template_id', sa.Integer(), nullable=False),
    sa.Column('delay_seconds', sa.Float(), nullable=False),
    sa.Column('cancel_on', sa.JSON(), nullable=False),
    sa.Column('frequency_cap', sa.JSON(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['team_id'], ['team.id'], name=op.f('fk_rule_team_id_team'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['template_id'], ['template.id'], name=op.f('fk_rule_template_id_template'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rule'))
    )
    with op.batch_alter_table('rule', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rule_team_id'), ['team_id'], unique=False)

    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rule_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('event_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('event_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_message_rule_id_rule'), 'rule', ['rule_id'], ['id'], ondelete='SET NULL')
        batch_op.create_foreign_key(batch_op.f('fk_message_event_id_event'), 'event', ['event_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('team', schema=None) as batch_op:
        batch_op.add_column(sa.Column('webhook_secret', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('webhook_secret_previous', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('webhook_rotated_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('team', schema=None) as batch_op:
        batch_op.drop_column('webhook_rotated_at')
        batch_op.drop_column('webhook_secret_previous')
        batch_op.drop_column('webhook_secret')

    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_message_event_id_event'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_message_rule_id_rule'), type_='foreignkey')
        batch_op.drop_column('event_at')
        batch_op.drop_column('event_id')
        batch_op.drop_column('rule_id')

    with op.batch_alter_table('rule', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rule_team_id'))

    op.drop_table('rule')
    op.drop_table('event')
