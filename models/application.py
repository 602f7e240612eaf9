"""Loan applications: an enterprise asks a bank for a product; every transition recorded."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, utcnow, value_enum
from models.enterprise import Enterprise
from models.product import LoanProduct


class ApplicationStatus(enum.StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    UNDER_REVIEW = "under_review"
    OFFERED = "offered"
    REJECTED = "rejected"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    DISBURSED = "disbursed"
    WITHDRAWN = "withdrawn"
    # The bank missed its deadline and the enterprise had it sent to the next matching bank.
    ROUTED = "routed"


OPEN_STATUSES = frozenset(
    {
        ApplicationStatus.DRAFT,
        ApplicationStatus.SUBMITTED,
        ApplicationStatus.UNDER_REVIEW,
        ApplicationStatus.OFFERED,
        ApplicationStatus.ACCEPTED,
    }
)


class LoanApplication(Base):
    __tablename__ = "loan_application"

    id: Mapped[int] = mapped_column(primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(sa.ForeignKey("enterprise.id"), index=True)
    product_id: Mapped[int] = mapped_column(sa.ForeignKey("loan_product.id"), index=True)
    bank_org_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(sa.Numeric(18, 2))  # CNY asked for
    term_months: Mapped[int]
    purpose: Mapped[str] = mapped_column(sa.String(500))
    status: Mapped[ApplicationStatus] = mapped_column(value_enum(ApplicationStatus, 16), index=True)
    sharing_authorization_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("authorization_grant.id")
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[dt.datetime | None]
    # The bank must answer (offer or reject) by then: the product's working days.
    respond_by: Mapped[dt.datetime | None] = mapped_column(index=True)
    decided_at: Mapped[dt.datetime | None]
    rejection_codes: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    rejection_text: Mapped[str | None] = mapped_column(sa.String(1000))
    offer_amount: Mapped[Decimal | None] = mapped_column(sa.Numeric(18, 2))
    offer_rate: Mapped[Decimal | None] = mapped_column(sa.Numeric(6, 3))  # annual, percent
    offer_term_months: Mapped[int | None]
    offer_fee: Mapped[Decimal | None] = mapped_column(sa.Numeric(18, 2))  # CNY, upfront
    offer_valid_until: Mapped[dt.date | None]
    # Taken by a bank from the enterprise's financing need (抢单) rather than applied for.
    need_id: Mapped[int | None] = mapped_column(sa.ForeignKey("financing_need.id"), index=True)
    # Sent here from an application whose bank missed its deadline.
    routed_from_id: Mapped[int | None] = mapped_column(sa.ForeignKey("loan_application.id"))
    # The enterprise's standing consent: past the deadline, send it on to the next matching
    # bank (and share the profile with that bank); who consented, so routing acts for them.
    route_on_overdue: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    route_consent_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    # When the office, bank and enterprise were told that the deadline passed (once).
    overdue_notified_at: Mapped[dt.datetime | None]

    enterprise: Mapped[Enterprise] = relationship()
    product: Mapped[LoanProduct] = relationship()
    events: Mapped[list[ApplicationEvent]] = relationship(
        back_populates="application", order_by="ApplicationEvent.id"
    )

    __table_args__ = (
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        sa.CheckConstraint("term_months > 0", name="term_positive"),
    )


class ApplicationEvent(Base):
    """One transition of an application: who moved it from what to what, when, and why."""

    __tablename__ = "application_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(sa.ForeignKey("loan_application.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(sa.String(16))
    to_status: Mapped[str] = mapped_column(sa.String(16))
    actor_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    details: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)

    application: Mapped[LoanApplication] = relationship(back_populates="events")
