"""opens counted once per look: when a person's and a machine's open were last counted, so
the open pixel and a message's live images, fetched together, are one open

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 22:00:00
"""
import sqlalchemy as sa
from alembic import op

import scheduler.store.models

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

_WHEN = scheduler.store.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_open_at', _WHEN, nullable=True))
        batch_op.add_column(sa.Column('last_machine_open_at', _WHEN, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_column('last_machine_open_at')
        batch_op.drop_column('last_open_at')
