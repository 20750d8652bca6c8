"""holds, daily limits and pacing

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 22:04:54.905772
"""
import sqlalchemy as sa
from alembic import op

import scheduler.store.models

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('gmail_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('limited_until', scheduler.store.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('daily_cap', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('next_send_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hold_kind', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('hold_until', scheduler.store.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_message_account_sent', ['account_id', 'sent_at'], unique=False)
        batch_op.create_check_constraint(
            op.f('ck_message_hold_kind'),
            "hold_kind IS NULL OR hold_kind IN ('missing_data', 'reconnect', 'daily_limit', "
            "'delivery_unknown', 'too_late', 'no_client')")
    # Messages held before this revision were held for missing data.
    op.execute("UPDATE message SET hold_kind = 'missing_data' WHERE status = 'held'")


def downgrade() -> None:
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_message_hold_kind'), type_='check')
        batch_op.drop_index('ix_message_account_sent')
        batch_op.drop_column('hold_until')
        batch_op.drop_column('hold_kind')

    with op.batch_alter_table('gmail_account', schema=None) as batch_op:
        batch_op.drop_column('next_send_at')
        batch_op.drop_column('daily_cap')
        batch_op.drop_column('limited_until')

