"""The legal representative's personal data (ID number, phone): masked for everyone, revealed
in full only to an administrator of the enterprise itself, on request, and audited."""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import lazy_gettext as _l

from app.services import audit
from app.services.accounts import PermissionRefused
from app.services.crypto import mask
from models import Enterprise, OrgKind, Role, User


@dataclass(frozen=True)
class LegalRepContact:
    id_number: str
    phone: str


def masked(enterprise: Enterprise) -> LegalRepContact:
    """``110***********1234`` and ``138****5678``; empty strings where nothing was given."""
    return LegalRepContact(mask(enterprise.legal_rep_id_number), mask(enterprise.legal_rep_phone))


def may_reveal(actor: User, enterprise: Enterprise) -> bool:
    return (
        actor.org_kind is OrgKind.ENTERPRISE
        and actor.organization_id == enterprise.organization_id
        and actor.role is Role.ADMIN
    )


def reveal(actor: User, enterprise: Enterprise) -> LegalRepContact:
    """The full values, for the enterprise's own admin only; every reveal is audited."""
    if not may_reveal(actor, enterprise):
        raise PermissionRefused(_l("Only an administrator of this enterprise may see this."))
    audit.record(
        "personal_data.reveal",
        actor=actor,
        enterprise_id=enterprise.id,
        object_type="enterprise",
        object_id=enterprise.id,
        details={"fields": ["legal_rep_id_number", "legal_rep_phone"]},
    )
    return LegalRepContact(enterprise.legal_rep_id_number or "", enterprise.legal_rep_phone or "")
