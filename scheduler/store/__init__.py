"""The database: engine and sessions, the tables, the message state machine and the one
module that changes a status (queue), the audit log, ids and idempotency keys, token
encryption, migrations.

May import: the shared words of `scheduler` (errors, typed, ...) only.
"""
