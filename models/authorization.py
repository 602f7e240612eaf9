"""Authorizations (授权): an enterprise's consent to collect or share its data.

Modelled on India's Account Aggregator consent artefact: who may do what with which data,
for what purpose, over which months, until when. The status is derived from the
timestamps (see :meth:`Authorization.status_at`), so expiry needs no job to take effect.
Whether a given use is allowed *now* is decided in one place only:
``app.services.authorization.decide``.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, utcnow, value_enum
from models.enterprise import Enterprise
from models.organization import Organization

SCOPES: tuple[str, ...] = ("tax", "social_insurance", "utilities", "provident_fund")
MAX_VALIDITY = dt.timedelta(days=366)


class AuthorizationKind(enum.StrEnum):
    COLLECTION = "collection"  # the platform may fetch the scopes from providers
    SHARING = "sharing"  # a bank (or every bank) may see the profile / records


class Purpose(enum.StrEnum):
    FINANCING = "financing"
    # Valid only while the named bank has an active loan to the enterprise.
    POST_LOAN_MONITORING = "post_loan_monitoring"


class FetchFrequency(enum.StrEnum):
    ONE_TIME = "one_time"
    MONTHLY = "monthly"


class AuthorizationStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    REVOKED = "revoked"
    EXPIRED = "expired"
    PENDING = "pending"  # valid_from still in the future


class Authorization(Base):
    __tablename__ = "authorization_grant"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Public identifier printed on the consent receipt.
    public_id: Mapped[str] = mapped_column(
        sa.String(36), unique=True, default=lambda: str(uuid.uuid4())
    )
    enterprise_id: Mapped[int] = mapped_column(sa.ForeignKey("enterprise.id"))
    kind: Mapped[AuthorizationKind] = mapped_column(value_enum(AuthorizationKind, 24))
    # Sharing: the bank that may see, or every bank when ``all_banks``; collection: neither.
    grantee_org_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organization.id"), index=True)
    all_banks: Mapped[bool] = mapped_column(default=False)
    # Sorted, comma-separated subset of SCOPES.
    scopes: Mapped[str] = mapped_column(sa.String(100))
    include_records: Mapped[bool] = mapped_column(default=False)
    purpose: Mapped[Purpose] = mapped_column(value_enum(Purpose, 24))
    data_from: Mapped[dt.date]  # first month of data covered (day 1)
    data_to: Mapped[dt.date]  # last month of data covered (day 1)
    data_life_days: Mapped[int]
    fetch_frequency: Mapped[FetchFrequency] = mapped_column(value_enum(FetchFrequency, 24))
    valid_from: Mapped[dt.datetime]
    valid_until: Mapped[dt.datetime]
    consent_text_version: Mapped[str] = mapped_column(sa.String(20))
    consent_text_hash: Mapped[str] = mapped_column(sa.String(64))
    granted_by_user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"))
    granted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    paused_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    revoked_by_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    use_count: Mapped[int] = mapped_column(default=0)
    last_used_at: Mapped[dt.datetime | None]
    expiry_reminder_sent_at: Mapped[dt.datetime | None]

    enterprise: Mapped[Enterprise] = relationship()
    grantee: Mapped[Organization | None] = relationship(foreign_keys=[grantee_org_id])

    __table_args__ = (
        sa.CheckConstraint("valid_until > valid_from", name="validity_positive"),
        sa.CheckConstraint("data_to >= data_from", name="data_range_ordered"),
        sa.CheckConstraint("data_life_days > 0", name="data_life_positive"),
        sa.CheckConstraint(
            "(kind = 'collection' AND grantee_org_id IS NULL AND NOT all_banks) OR "
            "(kind = 'sharing' AND ((grantee_org_id IS NULL) = all_banks))",
            name="grantee_matches_kind",
        ),
        sa.Index("ix_authorization_grant_grantee_kind", "kind", "grantee_org_id"),
        # An enterprise's grants of one kind (the policy's reads; the prospect list's
        # collection scopes, one lookup per prospect): both equalities in the index, so
        # the planner takes it even before statistics describe a freshly loaded table.
        sa.Index("ix_authorization_grant_enterprise_kind", "enterprise_id", "kind"),
    )

    @property
    def scope_list(self) -> list[str]:
        return [s for s in self.scopes.split(",") if s]

    def covers(self, scope: str) -> bool:
        return scope in self.scope_list

    def status_at(self, now: dt.datetime) -> AuthorizationStatus:
        if self.revoked_at is not None and self.revoked_at <= now:
            return AuthorizationStatus.REVOKED
        if self.valid_until <= now:
            return AuthorizationStatus.EXPIRED
        if self.paused_at is not None:
            return AuthorizationStatus.PAUSED
        if self.valid_from > now:
            return AuthorizationStatus.PENDING
        return AuthorizationStatus.ACTIVE

    def __repr__(self) -> str:
        return f"<Authorization {self.public_id} {self.kind.value} {self.scopes}>"
