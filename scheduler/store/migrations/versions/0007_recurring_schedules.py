"""recurring schedules

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 01:15:43.995409
"""
import sqlalchemy as sa
from alembic import op

import scheduler.store.models

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('schedule',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('cron', sa.String(length=200), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('template_id', sa.Integer(), nullable=False),
    sa.Column('to_addr', sa.String(length=400), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('next_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('occurrences', sa.Integer(), nullable=False),
    sa.Column('created_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['user_account.id'], name=op.f('fk_schedule_created_by_user_account')),
    sa.ForeignKeyConstraint(['team_id'], ['team.id'], name=op.f('fk_schedule_team_id_team'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['template_id'], ['template.id'], name=op.f('fk_schedule_template_id_template'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_schedule'))
    )
    with op.batch_alter_table('schedule', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_schedule_next_at'), ['next_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_schedule_team_id'), ['team_id'], unique=False)

    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('schedule_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_message_schedule_id_schedule'), 'schedule', ['schedule_id'], ['id'], ondelete='SET NULL')



def downgrade() -> None:
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_message_schedule_id_schedule'), type_='foreignkey')
        batch_op.drop_column('schedule_id')

    with op.batch_alter_table('schedule', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_schedule_team_id'))
        batch_op.drop_index(batch_op.f('ix_schedule_next_at'))

    op.drop_table('schedule')
