"""one owner per decision: message origin keys, schedule catch-up, idempotency keys

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 10:30:00
"""
import sqlalchemy as sa
from alembic import op

import scheduler.store.models

_HOLD_KINDS = "hold_kind IS NULL OR hold_kind IN ({kinds})"
_OLD_KINDS = ("'missing_data', 'reconnect', 'daily_limit', 'delivery_unknown', 'too_late', "
              "'no_client'")
_NEW_KINDS = _OLD_KINDS + ", 'account_gone'"

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('idempotency_key',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('response', sa.JSON(), nullable=True),
    sa.Column('created_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['team_id'], ['team.id'], name=op.f('fk_idempotency_key_team_id_team'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotency_key')),
    sa.UniqueConstraint('team_id', 'key', name='uq_idempotency_key_team_key')
    )
    with op.batch_alter_table('idempotency_key', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_idempotency_key_created_at'), ['created_at'], unique=False)

    op.create_table('web_session',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', scheduler.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_web_session_user_id_user_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_web_session'))
    )
    with op.batch_alter_table('web_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_session_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('origin_key', sa.String(length=200), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_message_origin_key'), ['origin_key'])

    with op.batch_alter_table('schedule', schema=None) as batch_op:
        batch_op.add_column(sa.Column('catch_up', sa.String(length=10), server_default='latest', nullable=False))

    # A new reason to hold: the account it was to go from is no longer the team's.
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_constraint('hold_kind', type_='check')
        batch_op.create_check_constraint('hold_kind', _HOLD_KINDS.format(
            kinds=_NEW_KINDS))

    # Before this version a lost lease always meant "may have been sent"; from now on the
    # last renewal before the Gmail request says so. Messages left 'sending' by an older
    # worker keep the old, careful meaning.
    op.execute("UPDATE message SET needs_reconcile = true WHERE status = 'sending'")
    _contacts_to_ascii()


def _contacts_to_ascii() -> None:
    """Contacts stored with an internationalized domain in Unicode get its IDNA form, the
    one every input now uses (an address that already exists that way is left as it is;
    a non-ASCII local part cannot be sent and stays, to fail clearly at release)."""
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, team_id, email FROM contact")).all()
    taken = {(r.team_id, r.email) for r in rows}
    for row in rows:
        if row.email.isascii():
            continue
        local, _, domain = row.email.rpartition("@")
        if not local.isascii():
            continue
        try:
            ascii_email = f"{local}@{domain.encode('idna').decode('ascii')}".lower()
        except UnicodeError:
            continue
        if (row.team_id, ascii_email) in taken:
            continue
        conn.execute(sa.text("UPDATE contact SET email = :e WHERE id = :i"),
                     {"e": ascii_email, "i": row.id})
        taken.add((row.team_id, ascii_email))


def downgrade() -> None:
    op.execute("UPDATE message SET hold_kind = 'reconnect' WHERE hold_kind = 'account_gone'")
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_constraint('hold_kind', type_='check')
        batch_op.create_check_constraint('hold_kind', _HOLD_KINDS.format(
            kinds=_OLD_KINDS))

    with op.batch_alter_table('schedule', schema=None) as batch_op:
        batch_op.drop_column('catch_up')

    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_message_origin_key'), type_='unique')
        batch_op.drop_column('origin_key')

    with op.batch_alter_table('idempotency_key', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_idempotency_key_created_at'))

    op.drop_table('idempotency_key')
    with op.batch_alter_table('web_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_web_session_user_id'))
    op.drop_table('web_session')
