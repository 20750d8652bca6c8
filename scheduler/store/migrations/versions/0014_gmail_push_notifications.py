"""gmail push notifications: each mailbox's watch, and one syncing worker at a time

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 20:00:00
"""
import sqlalchemy as sa
from alembic import op

import scheduler.store.models

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

_WHEN = scheduler.store.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('gmail_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('watch_expires_at', _WHEN, nullable=True))
        batch_op.add_column(sa.Column('watch_checked_at', _WHEN, nullable=True))
        batch_op.add_column(sa.Column('watch_error', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('sync_lease_until', _WHEN, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('gmail_account', schema=None) as batch_op:
        batch_op.drop_column('sync_lease_until')
        batch_op.drop_column('watch_error')
        batch_op.drop_column('watch_checked_at')
        batch_op.drop_column('watch_expires_at')
