"""trigram indexes (pg_trgm) for the searches people type on PostgreSQL: a recipient or a
subject in the queue, an address or a name among contacts; SQLite searches as before

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 02:15:00
"""
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

# `LIKE '%text%'` reads these instead of every row (pg_trgm is a trusted extension: the
# database's owner may create it).
INDEXES = {
    "ix_message_to_trgm": "message USING gin (lower(to_addr) gin_trgm_ops)",
    "ix_message_subject_trgm":
        "message USING gin (lower(coalesce(subject, subject_tpl)) gin_trgm_ops)",
    "ix_contact_email_trgm": "contact USING gin (email gin_trgm_ops)",
    "ix_contact_name_trgm": "contact USING gin (lower(name) gin_trgm_ops)",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, target in INDEXES.items():
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {target}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
