"""tracking, suppression and mailbox sync

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 00:36:11.244968
"""
import sqlalchemy as sa
from alembic import op

import scheduler.store.models

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.add_column(sa.Column('subscription_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('subscription_changed_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=True))
        # A hard bounce is a third state.
        batch_op.drop_constraint(op.f('ck_contact_subscription'), type_='check')
        batch_op.create_check_constraint(
            op.f('ck_contact_subscription'),
            "subscription IN ('subscribed', 'unsubscribed', 'bounced')")

    with op.batch_alter_table('gmail_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('history_id', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('synced_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('transactional', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('tracking', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column('opens', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('clicks', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('machine_opens', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('machine_clicks', sa.Integer(), nullable=False, server_default='0'))
        batch_op.create_index('ix_message_thread', ['gmail_thread_id'], unique=False)

    with op.batch_alter_table('team', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tracking', sa.Boolean(), nullable=False, server_default=sa.true()))

    with op.batch_alter_table('template', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tracking', sa.Boolean(), nullable=False, server_default=sa.true()))



def downgrade() -> None:
    with op.batch_alter_table('template', schema=None) as batch_op:
        batch_op.drop_column('tracking')

    with op.batch_alter_table('team', schema=None) as batch_op:
        batch_op.drop_column('tracking')

    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_index('ix_message_thread')
        batch_op.drop_column('machine_clicks')
        batch_op.drop_column('machine_opens')
        batch_op.drop_column('clicks')
        batch_op.drop_column('opens')
        batch_op.drop_column('tracking')
        batch_op.drop_column('transactional')

    with op.batch_alter_table('gmail_account', schema=None) as batch_op:
        batch_op.drop_column('synced_at')
        batch_op.drop_column('history_id')

    op.execute("UPDATE contact SET subscription = 'unsubscribed' "
               "WHERE subscription = 'bounced'")
    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_contact_subscription'), type_='check')
        batch_op.create_check_constraint(op.f('ck_contact_subscription'),
                                         "subscription IN ('subscribed', 'unsubscribed')")
        batch_op.drop_column('subscription_changed_at')
        batch_op.drop_column('subscription_reason')

