"""prospect indexes: an enterprise's grants by kind, its newest profile

The bank's prospect list reads, for every prospect, its live collection grants and the id
of its newest credit profile. With only ``authorization_grant(enterprise_id)`` and
``credit_profile(enterprise_id, computed_at)`` the planner, before statistics describe a
freshly loaded table, took the ``(kind, grantee_org_id)`` index and a backward scan of the
primary key instead (every collection grant and hundreds of profiles read per prospect: 42
ms for 311 prospects). The index on ``enterprise_id`` alone becomes
``(enterprise_id, kind)`` (it serves the same lookups), and
``credit_profile(enterprise_id, id)`` answers max(id) per enterprise with one probe.

Revision ID: 0020_prospect_indexes
Revises: 0019_record_refs
Create Date: 2026-12-07 04:45:00
"""

from alembic import op

revision = "0020_prospect_indexes"
down_revision = "0019_record_refs"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("authorization_grant", schema=None) as batch_op:
        batch_op.drop_index("ix_authorization_grant_enterprise_id")
        batch_op.create_index(
            "ix_authorization_grant_enterprise_kind", ["enterprise_id", "kind"], unique=False
        )
    with op.batch_alter_table("credit_profile", schema=None) as batch_op:
        batch_op.create_index(
            "ix_credit_profile_enterprise_id", ["enterprise_id", "id"], unique=False
        )


def downgrade():
    with op.batch_alter_table("credit_profile", schema=None) as batch_op:
        batch_op.drop_index("ix_credit_profile_enterprise_id")
    with op.batch_alter_table("authorization_grant", schema=None) as batch_op:
        batch_op.drop_index("ix_authorization_grant_enterprise_kind")
        batch_op.create_index(
            "ix_authorization_grant_enterprise_id", ["enterprise_id"], unique=False
        )
