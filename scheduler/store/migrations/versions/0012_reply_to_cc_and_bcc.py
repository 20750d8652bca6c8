"""reply-to, cc and bcc on messages, templates and campaigns

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 17:20:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

TABLES = ('message', 'template', 'campaign')


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('reply_to', sa.String(length=400), nullable=True))
            batch_op.add_column(sa.Column('cc', sa.JSON(), nullable=True))
            batch_op.add_column(sa.Column('bcc', sa.JSON(), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('bcc')
            batch_op.drop_column('cc')
            batch_op.drop_column('reply_to')
