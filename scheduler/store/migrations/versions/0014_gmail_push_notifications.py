"""gmail push notifications: each mailbox's watch, one syncing worker at a time, and the
notifications pushed to the app until a worker reads their mailbox

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
    op.create_table('mailbox_notification',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('history_id', sa.String(length=40), nullable=True),
    sa.Column('received_at', _WHEN, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mailbox_notification'))
    )
    with op.batch_alter_table('gmail_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('watch_expires_at', _WHEN, nullable=True))
        batch_op.add_column(sa.Column('watch_checked_at', _WHEN, nullable=True))
        batch_op.add_column(sa.Column('watch_error', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('watch_failures', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('sync_lease_until', _WHEN, nullable=True))
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('follow_postpone', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    op.drop_table('mailbox_notification')
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_column('follow_postpone')
    with op.batch_alter_table('gmail_account', schema=None) as batch_op:
        batch_op.drop_column('sync_lease_until')
        batch_op.drop_column('watch_failures')
        batch_op.drop_column('watch_error')
        batch_op.drop_column('watch_checked_at')
        batch_op.drop_column('watch_expires_at')
