"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 21:39:49.620372
"""
import sqlalchemy as sa
from alembic import op

import scheduler.store.models

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('team',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_team'))
    )
    op.create_table('worker_heartbeat',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('hostname', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('seen_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_worker_heartbeat'))
    )
    op.create_table('user_account',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('personal_team_id', sa.Integer(), nullable=True),
    sa.Column('created_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['personal_team_id'], ['team.id'], name=op.f('fk_user_account_personal_team_id_team')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_account')),
    sa.UniqueConstraint('email', name=op.f('uq_user_account_email'))
    )
    op.create_table('api_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['team_id'], ['team.id'], name=op.f('fk_api_token_team_id_team'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_api_token_user_id_user_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_token')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_token_token_hash'))
    )
    op.create_table('gmail_account',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=True),
    sa.Column('token_blob', sa.LargeBinary(), nullable=False),
    sa.Column('scopes', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('status_reason', sa.Text(), nullable=True),
    sa.Column('created_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('connected', 'reconnect', 'disconnected')", name=op.f('ck_gmail_account_status')),
    sa.ForeignKeyConstraint(['team_id'], ['team.id'], name=op.f('fk_gmail_account_team_id_team')),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_gmail_account_user_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gmail_account')),
    sa.UniqueConstraint('email', name=op.f('uq_gmail_account_email'))
    )
    with op.batch_alter_table('gmail_account', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gmail_account_team_id'), ['team_id'], unique=False)

    op.create_table('membership',
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.CheckConstraint("role IN ('owner', 'member', 'viewer')", name=op.f('ck_membership_role')),
    sa.ForeignKeyConstraint(['team_id'], ['team.id'], name=op.f('fk_membership_team_id_team'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_membership_user_id_user_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('team_id', 'user_id', name=op.f('pk_membership'))
    )
    op.create_table('message',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('to_addr', sa.String(length=400), nullable=False),
    sa.Column('from_addr', sa.String(length=400), nullable=False),
    sa.Column('subject_tpl', sa.Text(), nullable=False),
    sa.Column('html_tpl', sa.Text(), nullable=False),
    sa.Column('text_tpl', sa.Text(), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('subject', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('release_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('lease_until', scheduler.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('needs_reconcile', sa.Boolean(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('claim_token', sa.String(length=32), nullable=True),
    sa.Column('rfc822_id', sa.String(length=300), nullable=False),
    sa.Column('reply_thread_id', sa.String(length=100), nullable=True),
    sa.Column('in_reply_to', sa.String(length=998), nullable=True),
    sa.Column('sent_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('gmail_message_id', sa.String(length=100), nullable=True),
    sa.Column('gmail_thread_id', sa.String(length=100), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('draft', 'scheduled', 'held', 'sending', 'retry_wait', 'sent', 'failed', 'cancelled')", name=op.f('ck_message_status')),
    sa.ForeignKeyConstraint(['account_id'], ['gmail_account.id'], name=op.f('fk_message_account_id_gmail_account')),
    sa.ForeignKeyConstraint(['created_by'], ['user_account.id'], name=op.f('fk_message_created_by_user_account')),
    sa.ForeignKeyConstraint(['team_id'], ['team.id'], name=op.f('fk_message_team_id_team')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message')),
    sa.UniqueConstraint('rfc822_id', name=op.f('uq_message_rfc822_id'))
    )
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_message_account_id'), ['account_id'], unique=False)
        batch_op.create_index('ix_message_due', ['status', 'release_at'], unique=False)
        batch_op.create_index('ix_message_team_created', ['team_id', 'created_at', 'id'], unique=False)

    op.create_table('message_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.String(length=32), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('at', scheduler.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['message_id'], ['message.id'], name=op.f('fk_message_event_message_id_message'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message_event'))
    )
    with op.batch_alter_table('message_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_message_event_message_id'), ['message_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('message_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_message_event_message_id'))

    op.drop_table('message_event')
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_index('ix_message_team_created')
        batch_op.drop_index('ix_message_due')
        batch_op.drop_index(batch_op.f('ix_message_account_id'))

    op.drop_table('message')
    op.drop_table('membership')
    with op.batch_alter_table('gmail_account', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gmail_account_team_id'))

    op.drop_table('gmail_account')
    op.drop_table('api_token')
    op.drop_table('user_account')
    op.drop_table('worker_heartbeat')
    op.drop_table('team')
