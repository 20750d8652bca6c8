"""outcome counts per team, campaign and UTC hour, kept as events are recorded (the
dashboard reads them instead of scanning every event); filled from the events so far

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 02:05:00
"""
import datetime as dt
from collections import Counter

import sqlalchemy as sa
from alembic import op

import scheduler.store.models

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

_WHEN = scheduler.store.models.UTCDateTime(timezone=True)
OUTCOMES = ("sent", "opened", "clicked", "replied", "bounced", "unsubscribed")


def upgrade() -> None:
    counts = op.create_table(
        'outcome_count',
        sa.Column('team_id', sa.Integer(), nullable=False),
        sa.Column('campaign_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('hour', _WHEN, nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['team_id'], ['team.id'],
                                name=op.f('fk_outcome_count_team_id_team'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('team_id', 'campaign_id', 'kind', 'hour',
                                name=op.f('pk_outcome_count')))
    # Each message's first event of each outcome, counted in its UTC hour.
    message, event = sa.table('message', sa.column('id'), sa.column('team_id'),
                              sa.column('campaign_id')), sa.table(
        'message_event', sa.column('message_id'), sa.column('type'), sa.column('at', _WHEN))
    first = (sa.select(message.c.team_id, sa.func.coalesce(message.c.campaign_id, 0),
                       event.c.type, sa.func.min(event.c.at).label('at'))
             .join(message, message.c.id == event.c.message_id)
             .where(event.c.type.in_(OUTCOMES))
             .group_by(event.c.message_id, message.c.team_id, message.c.campaign_id,
                       event.c.type))
    tally: Counter = Counter()
    for team_id, campaign_id, kind, at in op.get_bind().execute(first):
        if isinstance(at, str):
            at = dt.datetime.fromisoformat(at)
        at = at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)
        tally[(team_id, campaign_id, kind, at.replace(minute=0, second=0,
                                                      microsecond=0))] += 1
    if tally:
        op.bulk_insert(counts, [{"team_id": t, "campaign_id": c, "kind": k, "hour": h, "n": n}
                                for (t, c, k, h), n in tally.items()])


def downgrade() -> None:
    op.drop_table('outcome_count')
