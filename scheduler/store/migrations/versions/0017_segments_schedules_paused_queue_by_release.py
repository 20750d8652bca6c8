"""segments (saved audiences), recurring sends paused or stopped with a reason, and the
indexes the queue page reads by (release time, per status) and a contact's history

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 01:00:00
"""
import sqlalchemy as sa
from alembic import op

import scheduler.store.models

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

_WHEN = scheduler.store.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'segment',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('team_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('conditions', sa.JSON(), nullable=False),
        sa.Column('created_by', sa.Integer(), nullable=True),
        sa.Column('created_at', _WHEN, nullable=False),
        sa.ForeignKeyConstraint(['team_id'], ['team.id'], name=op.f('fk_segment_team_id_team'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['created_by'], ['user_account.id'],
                                name=op.f('fk_segment_created_by_user_account'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_segment')),
        sa.UniqueConstraint('team_id', 'name', name='uq_segment_team_name'))
    with op.batch_alter_table('schedule', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stopped_at', _WHEN, nullable=True))
        batch_op.add_column(sa.Column('stop_reason', sa.Text(), nullable=True))
    # Stopped before this version: inactive meant stopped (there was no pause).
    op.execute("UPDATE schedule SET stopped_at = created_at, stop_reason = 'stopped' "
               "WHERE NOT active")
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.create_index('ix_message_team_release', ['team_id', 'release_at', 'id'])
        batch_op.create_index('ix_message_team_status_release',
                              ['team_id', 'status', 'release_at', 'id'])
        batch_op.create_index('ix_message_team_contact', ['team_id', 'contact_id'])
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.create_index('ix_event_team_email', ['team_id', 'email', 'received_at'])


def downgrade() -> None:
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_index('ix_event_team_email')
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_index('ix_message_team_contact')
        batch_op.drop_index('ix_message_team_status_release')
        batch_op.drop_index('ix_message_team_release')
    with op.batch_alter_table('schedule', schema=None) as batch_op:
        batch_op.drop_column('stop_reason')
        batch_op.drop_column('stopped_at')
    op.drop_table('segment')
