"""events accepted now and processed later (Prefer: respond-async): an event's status, the
lease of whoever runs its rules, and who sent it

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 23:00:00
"""
import sqlalchemy as sa
from alembic import op

import scheduler.store.models

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

_WHEN = scheduler.store.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=10), nullable=False,
                                      server_default='done'))
        batch_op.add_column(sa.Column('claimed_until', _WHEN, nullable=True))
        batch_op.add_column(sa.Column('user_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_event_user_id_user_account'),
                                    'user_account', ['user_id'], ['id'], ondelete='SET NULL')
        batch_op.create_index('ix_event_pending', ['status', 'claimed_until'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_index('ix_event_pending')
        batch_op.drop_constraint(batch_op.f('fk_event_user_id_user_account'),
                                 type_='foreignkey')
        batch_op.drop_column('user_id')
        batch_op.drop_column('claimed_until')
        batch_op.drop_column('status')
