"""audit_chain_end(lock_key): the audit chain's lock and its last event in one call

Appending to the audit trail took three statements on PostgreSQL: the transaction-scoped
advisory lock, the read of the chain's end, then the INSERT. The first two can only be one
statement inside a function: a single SELECT would read the chain's end with the snapshot
it took before it waited for the lock, and miss an append committed meanwhile. A VOLATILE
PL/pgSQL function takes a fresh snapshot for each query it runs, so its SELECT, run once the
lock is granted, sees every append committed before. Nothing else changes: SQLite (one
writer) keeps reading the end directly.

Revision ID: 0021_audit_chain_end
Revises: 0020_prospect_indexes
Create Date: 2026-12-07 07:05:00
"""

from alembic import op

revision = "0021_audit_chain_end"
down_revision = "0020_prospect_indexes"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION audit_chain_end(lock_key bigint)
        RETURNS TABLE (seq integer, hash varchar)
        LANGUAGE plpgsql VOLATILE AS $$
        BEGIN
            PERFORM pg_advisory_xact_lock(lock_key);
            RETURN QUERY SELECT e.seq, e.hash FROM audit_event AS e ORDER BY e.seq DESC LIMIT 1;
        END
        $$
        """
    )


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION audit_chain_end(bigint)")
