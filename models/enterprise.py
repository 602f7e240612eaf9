"""The enterprise (SME) as registered on the platform."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from models.base import Base, utcnow, value_enum
from models.codes import normalize_industry_code, normalize_region_code, normalize_uscc
from models.encryption import EncryptedText
from models.organization import Organization


class SizeClass(enum.StrEnum):
    MICRO = "micro"
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"


class Enterprise(Base):
    """One enterprise, keyed by its USCC; its organization holds the users acting for it."""

    __tablename__ = "enterprise"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"), unique=True)
    uscc: Mapped[str] = mapped_column(sa.String(18), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    legal_representative: Mapped[str] = mapped_column(sa.String(100))
    # Personal data of the legal representative, optional, stored encrypted (AES-GCM, see
    # app.services.crypto) and shown masked except to the enterprise's admin on request.
    legal_rep_id_number: Mapped[str | None] = mapped_column(
        EncryptedText("enterprise.legal_rep_id_number")
    )
    legal_rep_phone: Mapped[str | None] = mapped_column(EncryptedText("enterprise.legal_rep_phone"))
    founded_on: Mapped[dt.date]
    region_code: Mapped[str] = mapped_column(sa.String(6), index=True)
    industry_code: Mapped[str] = mapped_column(sa.String(3), index=True)
    employees: Mapped[int]
    annual_revenue: Mapped[Decimal] = mapped_column(sa.Numeric(18, 2))
    total_assets: Mapped[Decimal | None] = mapped_column(sa.Numeric(18, 2))
    size_class: Mapped[SizeClass] = mapped_column(
        value_enum(SizeClass, 8),
        index=True,
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    organization: Mapped[Organization] = relationship(back_populates="enterprise")

    __table_args__ = (
        sa.CheckConstraint("employees >= 0", name="employees_non_negative"),
        sa.CheckConstraint("annual_revenue >= 0", name="revenue_non_negative"),
    )

    @validates("uscc")
    def _validate_uscc(self, _key: str, value: str) -> str:
        return normalize_uscc(value)

    @validates("region_code")
    def _validate_region(self, _key: str, value: str) -> str:
        return normalize_region_code(value)

    @validates("industry_code")
    def _validate_industry(self, _key: str, value: str) -> str:
        return normalize_industry_code(value)

    def __repr__(self) -> str:
        return f"<Enterprise {self.uscc} {self.name!r}>"
