"""Searching the audit trail for the office's viewer (filters, pages)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from app.services.accounts import PermissionRefused
from app.services.workdays import SHANGHAI
from models import AuditEvent, Enterprise, Organization, OrgKind, User, db

PAGE_SIZE = 50
COUNT_CAP = 100_000
"""Matching events counted at most (2,000 pages): a province's trail holds tens of millions,
and a count of them all on every view would take seconds; older ones are reached by
narrowing the filters (a date range)."""


@dataclass(frozen=True)
class AuditFilter:
    enterprise: str = ""  # USCC, or part of the enterprise's name
    actor: str = ""  # part of the actor's e-mail or name
    action: str = ""  # exact action, or a prefix ending in "." (e.g. "model.")
    date_from: dt.date | None = None  # Beijing dates, both inclusive
    date_to: dt.date | None = None


@dataclass(frozen=True)
class AuditRow:
    event: AuditEvent
    actor: User | None
    organization: Organization | None
    enterprise: Enterprise | None


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditRow]
    total: int  # at most COUNT_CAP
    page: int
    pages: int
    capped: bool = False  # more than COUNT_CAP events match: only the newest are paged


def _start_of(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0, 0), tzinfo=SHANGHAI).astimezone(dt.UTC)


def search(actor: User, flt: AuditFilter, page: int = 1, per_page: int = PAGE_SIZE) -> AuditPage:
    """Events matching every given filter, newest first, one page of them.

    Office users only (:class:`PermissionRefused` otherwise)."""
    if actor.org_kind is not OrgKind.OFFICE:
        raise PermissionRefused(_l("Only the financial office reads the whole audit trail."))
    acting = sa.orm.aliased(User)
    ent = sa.orm.aliased(Enterprise)
    query = (
        sa.select(AuditEvent, acting, Organization, ent)
        .outerjoin(acting, AuditEvent.actor_user_id == acting.id)
        .outerjoin(Organization, AuditEvent.actor_org_id == Organization.id)
        .outerjoin(ent, AuditEvent.enterprise_id == ent.id)
    )
    conditions: list[Any] = []
    if text := flt.enterprise.strip():
        conditions.append(
            sa.or_(ent.uscc == text.upper(), ent.name.contains(text, autoescape=True))
        )
    if text := flt.actor.strip():
        conditions.append(
            sa.or_(
                acting.email.contains(text.lower(), autoescape=True),
                acting.display_name.contains(text, autoescape=True),
            )
        )
    if text := flt.action.strip():
        if text.endswith("."):
            conditions.append(AuditEvent.action.startswith(text, autoescape=True))
        else:
            conditions.append(AuditEvent.action == text)
    if flt.date_from:
        conditions.append(AuditEvent.occurred_at >= _start_of(flt.date_from))
    if flt.date_to:
        conditions.append(AuditEvent.occurred_at < _start_of(flt.date_to + dt.timedelta(days=1)))
    query = query.where(*conditions)
    matching = query.with_only_columns(AuditEvent.id).limit(COUNT_CAP + 1).subquery()
    total = int(db.session.scalar(sa.select(sa.func.count()).select_from(matching)) or 0)
    capped = total > COUNT_CAP
    total = min(total, COUNT_CAP)
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    result = db.session.execute(
        query.order_by(AuditEvent.seq.desc()).offset((page - 1) * per_page).limit(per_page)
    )
    rows = [AuditRow(e, u, o, en) for e, u, o, en in result.all()]
    return AuditPage(rows, total, page, pages, capped)


# Each distinct action found through the action index, one index probe per action (a
# "loose index scan"): a DISTINCT over the whole trail would read every event.
_ACTIONS = sa.text(
    """
    WITH RECURSIVE found(action) AS (
        SELECT min(action) FROM audit_event
        UNION ALL
        SELECT (SELECT min(e.action) FROM audit_event AS e WHERE e.action > found.action)
        FROM found WHERE found.action IS NOT NULL
    )
    SELECT action FROM found WHERE action IS NOT NULL
    """
)


def actions() -> list[str]:
    """Every action recorded so far, in order (for the filter's choices)."""
    return list(db.session.scalars(_ACTIONS))
