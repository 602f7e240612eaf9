"""What matching reads, versioned: one row that changes whenever any input of a bank's
prospect list changes.

A prospect list matches every enterprise that shared with the bank against the bank's
products: its inputs are the grants (sharing and collection), the enterprises' matching
columns, their credit profiles, the products and the loans (a post-loan-monitoring grant
counts only while the bank's loan is active). Database triggers (migration
``0023_match_epoch``) give this row a new ``(n, stamp)`` in every transaction that changes
one of them, so a web process may keep a bank's matched list while the row is unchanged
(:mod:`app.services.bank_views`). On PostgreSQL the triggers are deferred to the commit (the
row is locked only while a writer commits, so writers do not queue behind each other); on
SQLite (one writer) they run at once. ``stamp`` is random: a rolled-back transaction's
number can never be mistaken for a later one's.

The row is inserted by the migration and never deleted; the use count of a grant, its
reminders and other columns matching does not read leave it alone.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base

# The columns whose change alters a prospect list, per table (all columns where omitted:
# any change). Inserts and deletes count too, except an enterprise's insert: it can be
# nobody's prospect before a grant names it, and the grant's insert counts.
MATCH_INPUTS: dict[str, tuple[str, ...] | None] = {
    "authorization_grant": (
        "enterprise_id", "kind", "grantee_org_id", "all_banks", "scopes", "purpose",
        "valid_from", "valid_until", "paused_at", "revoked_at",
    ),
    "enterprise": (
        "id", "uscc", "name", "region_code", "industry_code", "size_class", "founded_on",
    ),
    "credit_profile": None,
    "loan_product": None,
    "loan": ("enterprise_id", "bank_org_id", "status"),
}  # fmt: skip


class MatchEpoch(Base):
    __tablename__ = "match_epoch"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)  # always 1
    n: Mapped[int] = mapped_column(sa.BigInteger, default=0)  # transactions counted
    stamp: Mapped[int] = mapped_column(sa.BigInteger, default=0)  # random, per change
