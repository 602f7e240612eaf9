"""Indexes for the lists and filters the UI and API offer (issue 8), kept in one place.

Each serves a list query of a page (checked by tests/models/test_indexes.py, which EXPLAINs
every SELECT the list pages send on a seeded PostgreSQL database). Partial indexes
(``postgresql_where``) serve lists whose filter is a negation ("decided", "not applied"),
which a plain index on the status cannot; ``varchar_pattern_ops`` serves the audit trail's
"action starts with" filter whatever the database's collation.
"""

from __future__ import annotations

import sqlalchemy as sa

from models.audit import AuditEvent
from models.job import Job
from models.objection import CreditRepair, Objection
from models.policy import PolicyApplication
from models.pool import PoolLedgerEntry

_audit = AuditEvent.__table__.c
_objection = Objection.__table__.c
_repair = CreditRepair.__table__.c
_policy_app = PolicyApplication.__table__.c
_ledger = PoolLedgerEntry.__table__.c
_job = Job.__table__.c

INDEXES = (
    # Audit trail: newest first within a date range; actions starting with a prefix.
    sa.Index("ix_audit_event_occurred_at", _audit.occurred_at),
    sa.Index(
        "ix_audit_event_action_prefix",
        _audit.action,
        postgresql_ops={"action": "varchar_pattern_ops"},
    ),
    # The office's objections: decided ones newest first (open ones use the status index).
    sa.Index(
        "ix_objection_decided",
        _objection.decided_at.desc(),
        _objection.id.desc(),
        postgresql_where=sa.text("status NOT IN ('flagged', 'filed')"),
    ),
    # Credit repairs: waiting ones oldest first, decided ones newest first.
    sa.Index("ix_credit_repair_status_applied", _repair.status, _repair.applied_at, _repair.id),
    sa.Index(
        "ix_credit_repair_decided",
        _repair.decided_at.desc(),
        _repair.id.desc(),
        postgresql_where=sa.text("status != 'applied'"),
    ),
    # Support-policy applications: the queue by submission, the approved ones by period.
    sa.Index(
        "ix_policy_application_status_submitted",
        _policy_app.status,
        _policy_app.submitted_at,
        _policy_app.id,
    ),
    sa.Index("ix_policy_application_status_decided", _policy_app.status, _policy_app.decided_at),
    # The pool's ledger, in order.
    sa.Index("ix_pool_ledger_entry_pool_id_id", _ledger.pool_id, _ledger.id),
    # Jobs by kind, newest first (rescoring panel, collection history per grant).
    sa.Index("ix_job_kind_id", _job.kind, _job.id),
    sa.Index("ix_job_authorization_created", _job.authorization_id, _job.created_at),
)
