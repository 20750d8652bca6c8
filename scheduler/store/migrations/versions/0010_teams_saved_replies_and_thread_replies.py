"""teams, saved replies and thread replies

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 02:43:19.963789
"""
import sqlalchemy as sa
from alembic import op

import scheduler.store.models

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('via', sa.String(length=20), nullable=False),
    sa.Column('action', sa.String(length=100), nullable=False),
    sa.Column('target', sa.String(length=200), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.Column('at', scheduler.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['team_id'], ['team.id'], name=op.f('fk_audit_entry_team_id_team'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_audit_entry_user_id_user_account'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_entry'))
    )
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.create_index('ix_audit_entry_team', ['team_id', 'id'], unique=False)

    op.create_table('invitation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('invited_by', sa.Integer(), nullable=True),
    sa.Column('created_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('accepted_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('accepted_by', sa.Integer(), nullable=True),
    sa.Column('revoked_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("role IN ('owner', 'member', 'viewer')", name=op.f('ck_invitation_role')),
    sa.ForeignKeyConstraint(['accepted_by'], ['user_account.id'], name=op.f('fk_invitation_accepted_by_user_account')),
    sa.ForeignKeyConstraint(['invited_by'], ['user_account.id'], name=op.f('fk_invitation_invited_by_user_account')),
    sa.ForeignKeyConstraint(['team_id'], ['team.id'], name=op.f('fk_invitation_team_id_team'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invitation'))
    )
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.create_index('ix_invitation_email', ['email'], unique=False)
        batch_op.create_index(batch_op.f('ix_invitation_team_id'), ['team_id'], unique=False)

    op.create_table('account_share',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.Column('shared_by', sa.Integer(), nullable=True),
    sa.Column('created_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['gmail_account.id'], name=op.f('fk_account_share_account_id_gmail_account'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['shared_by'], ['user_account.id'], name=op.f('fk_account_share_shared_by_user_account')),
    sa.ForeignKeyConstraint(['team_id'], ['team.id'], name=op.f('fk_account_share_team_id_team'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', 'team_id', name=op.f('pk_account_share'))
    )
    with op.batch_alter_table('gmail_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('send_as', sa.JSON(), nullable=True))

    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('thread_references', sa.Text(), nullable=True))

    with op.batch_alter_table('template', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=20), server_default='email', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('template', schema=None) as batch_op:
        batch_op.drop_column('kind')

    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_column('thread_references')

    with op.batch_alter_table('gmail_account', schema=None) as batch_op:
        batch_op.drop_column('send_as')

    op.drop_table('account_share')
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invitation_team_id'))
        batch_op.drop_index('ix_invitation_email')

    op.drop_table('invitation')
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_entry_team')

    op.drop_table('audit_entry')
