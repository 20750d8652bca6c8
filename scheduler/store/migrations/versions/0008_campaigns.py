"""campaigns

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 01:20:42.043198
"""
import sqlalchemy as sa
from alembic import op

import scheduler.store.models

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('campaign',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('variants', sa.JSON(), nullable=False),
    sa.Column('audience', sa.JSON(), nullable=False),
    sa.Column('timing', sa.JSON(), nullable=True),
    sa.Column('ab', sa.JSON(), nullable=True),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.Column('from_addr', sa.String(length=400), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('pending', sa.JSON(), nullable=True),
    sa.Column('decide_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('decided_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('winner', sa.String(length=20), nullable=True),
    sa.Column('decision', sa.JSON(), nullable=True),
    sa.Column('counts', sa.JSON(), nullable=True),
    sa.Column('created_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['user_account.id'], name=op.f('fk_campaign_created_by_user_account')),
    sa.ForeignKeyConstraint(['team_id'], ['team.id'], name=op.f('fk_campaign_team_id_team'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign'))
    )
    with op.batch_alter_table('campaign', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_campaign_decide_at'), ['decide_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_campaign_team_id'), ['team_id'], unique=False)

    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('campaign_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('variant', sa.String(length=20), nullable=True))
        batch_op.create_index(batch_op.f('ix_message_campaign_id'), ['campaign_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_message_campaign_id_campaign'), 'campaign', ['campaign_id'], ['id'], ondelete='SET NULL')



def downgrade() -> None:
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_message_campaign_id_campaign'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_message_campaign_id'))
        batch_op.drop_column('variant')
        batch_op.drop_column('campaign_id')

    with op.batch_alter_table('campaign', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_campaign_team_id'))
        batch_op.drop_index(batch_op.f('ix_campaign_decide_at'))

    op.drop_table('campaign')
