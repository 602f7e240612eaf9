"""Loans: what an accepted offer becomes at disbursement, and what happens to it after."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, utcnow, value_enum
from models.enterprise import Enterprise
from models.product import LoanProduct


class LoanStatus(enum.StrEnum):
    ACTIVE = "active"
    REPAID = "repaid"
    DEFAULTED = "defaulted"


class LoanEventKind(enum.StrEnum):
    REPAYMENT = "repayment"
    OVERDUE = "overdue"
    DEFAULT = "default"
    RECOVERY = "recovery"


class Loan(Base):
    __tablename__ = "loan"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(sa.ForeignKey("loan_application.id"), unique=True)
    enterprise_id: Mapped[int] = mapped_column(sa.ForeignKey("enterprise.id"), index=True)
    bank_org_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"), index=True)
    product_id: Mapped[int] = mapped_column(sa.ForeignKey("loan_product.id"))
    principal: Mapped[Decimal] = mapped_column(sa.Numeric(18, 2))
    rate: Mapped[Decimal] = mapped_column(sa.Numeric(6, 3))  # annual, percent
    term_months: Mapped[int]
    disbursed_on: Mapped[dt.date]
    maturity_on: Mapped[dt.date]
    # 首贷: the enterprise had no earlier loan on the platform when this one was disbursed.
    first_loan: Mapped[bool]
    # The product takes part in the risk-compensation pool (the pool's own checks: issue 6).
    pool_candidate: Mapped[bool] = mapped_column(default=False)
    outstanding: Mapped[Decimal] = mapped_column(sa.Numeric(18, 2))
    status: Mapped[LoanStatus] = mapped_column(
        value_enum(LoanStatus, 16), default=LoanStatus.ACTIVE, index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    enterprise: Mapped[Enterprise] = relationship()
    product: Mapped[LoanProduct] = relationship()
    events: Mapped[list[LoanEvent]] = relationship(back_populates="loan", order_by="LoanEvent.id")

    __table_args__ = (
        sa.CheckConstraint("principal > 0", name="principal_positive"),
        sa.CheckConstraint(
            "outstanding >= 0 AND outstanding <= principal", name="outstanding_range"
        ),
    )


class LoanEvent(Base):
    __tablename__ = "loan_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    loan_id: Mapped[int] = mapped_column(sa.ForeignKey("loan.id"), index=True)
    kind: Mapped[LoanEventKind] = mapped_column(value_enum(LoanEventKind, 16))
    occurred_on: Mapped[dt.date]
    amount: Mapped[Decimal | None] = mapped_column(sa.Numeric(18, 2))
    days_overdue: Mapped[int | None]
    actor_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    loan: Mapped[Loan] = relationship(back_populates="events")

    __table_args__ = (sa.CheckConstraint("amount IS NULL OR amount > 0", name="amount_positive"),)
