"""follow-up steps

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 01:21:58.636976
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('follows_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('follow_unless', sa.String(length=10), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_message_follows_id_message'), 'message', ['follows_id'], ['id'], ondelete='SET NULL')



def downgrade() -> None:
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_message_follows_id_message'), type_='foreignkey')
        batch_op.drop_column('follow_unless')
        batch_op.drop_column('follows_id')

