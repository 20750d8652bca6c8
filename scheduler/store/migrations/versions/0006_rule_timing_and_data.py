"""rule timing and data

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 01:13:45.800764
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('rule', schema=None) as batch_op:
        batch_op.add_column(sa.Column('timing', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('data', sa.JSON(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('rule', schema=None) as batch_op:
        batch_op.drop_column('data')
        batch_op.drop_column('timing')

