"""attachments (stored files), the account-safety guard (warm-up, pauses, domain counts)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 19:00:00
"""
import sqlalchemy as sa
from alembic import op

import scheduler.store.models

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

_HOLD_KINDS = "hold_kind IS NULL OR hold_kind IN ({kinds})"
_OLD_KINDS = ("'missing_data', 'reconnect', 'daily_limit', 'delivery_unknown', 'too_late', "
              "'no_client', 'account_gone'")
_NEW_KINDS = _OLD_KINDS + ", 'paused'"
_WHEN = scheduler.store.models.UTCDateTime(timezone=True)
_PAUSABLE = ('gmail_account', 'campaign', 'rule')


def upgrade() -> None:
    op.create_table('stored_file',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('content_type', sa.String(length=255), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', _WHEN, nullable=False),
    sa.ForeignKeyConstraint(['team_id'], ['team.id'], name=op.f('fk_stored_file_team_id_team'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['created_by'], ['user_account.id'], name=op.f('fk_stored_file_created_by_user_account'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stored_file')),
    sa.UniqueConstraint('team_id', 'sha256', 'filename', 'content_type', name='uq_stored_file_content')
    )
    with op.batch_alter_table('stored_file', schema=None) as batch_op:
        batch_op.create_index('ix_stored_file_team_name', ['team_id', 'filename'], unique=False)

    op.create_table('sending_domain',
    sa.Column('domain', sa.String(length=255), nullable=False),
    sa.Column('bulk_since', _WHEN, nullable=True),
    sa.Column('peak', sa.Integer(), nullable=False, server_default='0'),
    sa.Column('peak_at', _WHEN, nullable=True),
    sa.PrimaryKeyConstraint('domain', name=op.f('pk_sending_domain'))
    )

    for table in ('message', 'template', 'campaign'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('attachments', sa.JSON(), nullable=True))
    for table in _PAUSABLE:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('paused_at', _WHEN, nullable=True))
            batch_op.add_column(sa.Column('paused_reason', sa.Text(), nullable=True))
            batch_op.add_column(sa.Column('guard_since', _WHEN, nullable=True))
    with op.batch_alter_table('gmail_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('warmup_started_at', _WHEN, nullable=True))

    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_constraint('hold_kind', type_='check')
        batch_op.create_check_constraint('hold_kind', _HOLD_KINDS.format(kinds=_NEW_KINDS))


def downgrade() -> None:
    op.execute("UPDATE message SET hold_kind = 'missing_data' WHERE hold_kind = 'paused'")
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_constraint('hold_kind', type_='check')
        batch_op.create_check_constraint('hold_kind', _HOLD_KINDS.format(kinds=_OLD_KINDS))
    with op.batch_alter_table('gmail_account', schema=None) as batch_op:
        batch_op.drop_column('warmup_started_at')
    for table in _PAUSABLE:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('guard_since')
            batch_op.drop_column('paused_reason')
            batch_op.drop_column('paused_at')
    for table in ('message', 'template', 'campaign'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('attachments')
    op.drop_table('sending_domain')
    with op.batch_alter_table('stored_file', schema=None) as batch_op:
        batch_op.drop_index('ix_stored_file_team_name')
    op.drop_table('stored_file')
