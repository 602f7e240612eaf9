"""Listing organizations and their users for the office and each organization's admins."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from app.services.accounts import PermissionRefused
from models import Enterprise, Organization, OrgKind, SizeClass, User, db


def _may_see_org(actor: User, org: Organization) -> bool:
    return actor.org_kind is OrgKind.OFFICE or actor.organization_id == org.id


def users_of(actor: User, org: Organization) -> list[User]:
    if not _may_see_org(actor, org):
        raise PermissionRefused(_l("You may not see this organization's users."))
    return list(
        db.session.scalars(sa.select(User).where(User.organization_id == org.id).order_by(User.id))
    )


def organizations(actor: User, kind: OrgKind) -> list[tuple[Organization, int]]:
    """Organizations of one kind with their user counts (office only)."""
    if actor.org_kind is not OrgKind.OFFICE:
        raise PermissionRefused(_l("Only the financial office may list organizations."))
    rows = db.session.execute(
        sa.select(Organization, sa.func.count(User.id))
        .outerjoin(User, User.organization_id == Organization.id)
        .where(Organization.kind == kind)
        .group_by(Organization.id)
        .order_by(Organization.name)
    )
    return [(org, n) for org, n in rows]


@dataclass(frozen=True)
class PlatformCounts:
    banks: int
    enterprises: int
    users: int
    enterprises_by_size: dict[str, int]


def platform_counts(actor: User) -> PlatformCounts:
    if actor.org_kind is not OrgKind.OFFICE:
        raise PermissionRefused(_l("Only the financial office may see platform figures."))
    banks = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(Organization)
        .where(Organization.kind == OrgKind.BANK)
    )
    users = db.session.scalar(sa.select(sa.func.count()).select_from(User))
    rows = db.session.execute(
        sa.select(Enterprise.size_class, sa.func.count()).group_by(Enterprise.size_class)
    )
    by_size = dict(rows.all())
    counts = {s.value: int(by_size.get(s, 0)) for s in SizeClass}
    return PlatformCounts(
        banks=int(banks or 0),
        enterprises=sum(counts.values()),
        users=int(users or 0),
        enterprises_by_size=counts,
    )


def organization(org_id: int) -> Organization | None:
    return db.session.get(Organization, org_id)
