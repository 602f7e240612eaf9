"""Financing needs (融资需求): an enterprise says what it wants; a matching bank may take it."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, utcnow, value_enum
from models.enterprise import Enterprise


class NeedStatus(enum.StrEnum):
    OPEN = "open"  # banks with a matching product see it and may take it
    TAKEN = "taken"  # one bank took it (抢单): an application to that bank is open
    WITHDRAWN = "withdrawn"  # the enterprise closed it
    FULFILLED = "fulfilled"  # the application it became was disbursed


class FinancingNeed(Base):
    __tablename__ = "financing_need"

    id: Mapped[int] = mapped_column(primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(sa.ForeignKey("enterprise.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(sa.Numeric(18, 2))  # CNY
    term_months: Mapped[int]
    purpose: Mapped[str] = mapped_column(sa.String(500))
    max_rate: Mapped[Decimal] = mapped_column(sa.Numeric(6, 3))  # annual, percent
    status: Mapped[NeedStatus] = mapped_column(value_enum(NeedStatus, 16), index=True)
    # The sharing consent the enterprise gave when posting (banks see the profile through it).
    sharing_authorization_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("authorization_grant.id")
    )
    # The grant was made for this need (not an earlier one the enterprise gave): withdrawing
    # the need may revoke it; a grant the enterprise gave on its own it revokes itself.
    owns_sharing_grant: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    created_by_user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    taken_by_org_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organization.id"))
    taken_at: Mapped[dt.datetime | None]
    closed_at: Mapped[dt.datetime | None]

    enterprise: Mapped[Enterprise] = relationship()

    __table_args__ = (
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        sa.CheckConstraint("term_months > 0", name="term_positive"),
        sa.CheckConstraint("max_rate > 0", name="max_rate_positive"),
    )
