"""Loan products a bank publishes, with their eligibility rules held as data.

A published product's terms and rules never change under an application that refers to
it: only drafts are edited; to change a published product the bank retires it and
publishes a revised copy.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, utcnow, value_enum
from models.organization import Organization


class ProductType(enum.StrEnum):
    CREDIT = "credit"  # 信用贷
    TAX_BASED = "tax_based"  # 税易贷
    PROVIDENT_FUND_BASED = "provident_fund_based"  # 公积金贷
    GOVERNMENT_PROCUREMENT = "government_procurement"  # 政采贷
    FIRST_LOAN = "first_loan"  # 首贷


class RepaymentMethod(enum.StrEnum):
    EQUAL_INSTALLMENT = "equal_installment"  # 等额本息
    EQUAL_PRINCIPAL = "equal_principal"  # 等额本金
    INTEREST_ONLY = "interest_only"  # 按月付息、到期还本
    BULLET = "bullet"  # 到期一次还本付息


class ProductStatus(enum.StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    RETIRED = "retired"


class LoanProduct(Base):
    __tablename__ = "loan_product"

    id: Mapped[int] = mapped_column(primary_key=True)
    bank_org_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    product_type: Mapped[ProductType] = mapped_column(value_enum(ProductType, 40))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    amount_min: Mapped[Decimal] = mapped_column(sa.Numeric(18, 2))  # CNY
    amount_max: Mapped[Decimal] = mapped_column(sa.Numeric(18, 2))
    term_min_months: Mapped[int]
    term_max_months: Mapped[int]
    rate_min: Mapped[Decimal] = mapped_column(sa.Numeric(6, 3))  # annual interest, percent
    rate_max: Mapped[Decimal] = mapped_column(sa.Numeric(6, 3))
    repayment_method: Mapped[RepaymentMethod] = mapped_column(value_enum(RepaymentMethod, 40))
    upfront_fee_pct: Mapped[Decimal] = mapped_column(sa.Numeric(6, 3), default=Decimal(0))
    response_days: Mapped[int]  # Chinese working days to answer an application

    # Eligibility rules. NULL / empty = no rule of that kind.
    min_grade: Mapped[str | None] = mapped_column(sa.String(8))
    public_credit_classes: Mapped[str] = mapped_column(sa.String(8), default="")  # "A,B"
    min_years_operating: Mapped[Decimal | None] = mapped_column(sa.Numeric(5, 1))
    min_annual_sales: Mapped[Decimal | None] = mapped_column(sa.Numeric(18, 2))  # CNY, tax data
    min_tax_months: Mapped[int | None]  # continuous months of tax payment
    min_social_months: Mapped[int | None]  # continuous months of social-insurance payment
    industries_allowed: Mapped[str] = mapped_column(sa.String(400), default="")  # "C,F51"
    industries_excluded: Mapped[str] = mapped_column(sa.String(400), default="")
    regions_allowed: Mapped[str] = mapped_column(sa.String(400), default="")  # "35,4403"
    regions_excluded: Mapped[str] = mapped_column(sa.String(400), default="")
    size_classes: Mapped[str] = mapped_column(sa.String(40), default="")  # "micro,small"
    required_scopes: Mapped[str] = mapped_column(sa.String(100), default="")
    pool_participation: Mapped[bool] = mapped_column(default=False)

    status: Mapped[ProductStatus] = mapped_column(
        value_enum(ProductStatus, 40), default=ProductStatus.DRAFT, index=True
    )
    revised_from_id: Mapped[int | None] = mapped_column(sa.ForeignKey("loan_product.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    published_at: Mapped[dt.datetime | None]
    retired_at: Mapped[dt.datetime | None]

    bank: Mapped[Organization] = relationship(foreign_keys=[bank_org_id])

    __table_args__ = (
        sa.CheckConstraint("amount_min > 0 AND amount_max >= amount_min", name="amount_range"),
        sa.CheckConstraint(
            "term_min_months > 0 AND term_max_months >= term_min_months", name="term_range"
        ),
        sa.CheckConstraint("rate_min > 0 AND rate_max >= rate_min", name="rate_range"),
        sa.CheckConstraint("response_days > 0", name="response_days_positive"),
        sa.CheckConstraint("upfront_fee_pct >= 0", name="fee_non_negative"),
    )

    @staticmethod
    def split(value: str) -> list[str]:
        return [v for v in (value or "").split(",") if v]

    def __repr__(self) -> str:
        return f"<LoanProduct {self.id} {self.name!r} {self.status.value}>"
