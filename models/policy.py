"""Financing support policies (融资支持政策) the office publishes, and enterprises' claims.

A policy pays an enterprise something for a loan it took: an interest subsidy (贴息), a
share of the guarantee fee it paid (担保费补贴) or a first-loan reward (首贷奖励). Who may
claim is decided by eligibility rules held in the same columns, with the same meaning, as
:class:`models.product.LoanProduct`'s (so one engine evaluates both), plus conditions on
the loan attached. Approvals never exceed the policy's budget: ``approved_total`` is raised
by a conditional update under a row lock, and a CHECK keeps it within ``total_budget``.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, utcnow, value_enum
from models.enterprise import Enterprise
from models.loan import Loan


class PolicyKind(enum.StrEnum):
    INTEREST_SUBSIDY = "interest_subsidy"  # 贷款贴息
    GUARANTEE_FEE_SUBSIDY = "guarantee_fee_subsidy"  # 担保费补贴
    FIRST_LOAN_REWARD = "first_loan_reward"  # 首贷奖励


class PolicyStatus(enum.StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    CLOSED = "closed"


class PolicyApplicationStatus(enum.StrEnum):
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"


class SupportPolicy(Base):
    __tablename__ = "support_policy"

    id: Mapped[int] = mapped_column(primary_key=True)
    office_org_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    kind: Mapped[PolicyKind] = mapped_column(value_enum(PolicyKind, 32))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    basis: Mapped[str] = mapped_column(sa.String(300), default="")  # the document it implements

    # Benefit terms (meaning by kind; see app/services/policies.py benefit()).
    # interest subsidy: percentage points of the loan's annual rate, and/or a share of the
    # interest (percent); with both, the smaller. Never more than the loan's own rate.
    subsidy_rate_pp: Mapped[Decimal | None] = mapped_column(sa.Numeric(6, 3))
    # share (percent) of the interest / of the guarantee fee paid / of the principal.
    share_pct: Mapped[Decimal | None] = mapped_column(sa.Numeric(6, 3))
    fixed_amount: Mapped[Decimal | None] = mapped_column(sa.Numeric(18, 2))  # first-loan reward
    annual_cap: Mapped[Decimal | None] = mapped_column(sa.Numeric(18, 2))  # per enterprise, year
    period_start: Mapped[dt.date]
    period_end: Mapped[dt.date]
    total_budget: Mapped[Decimal] = mapped_column(sa.Numeric(18, 2))
    approved_total: Mapped[Decimal] = mapped_column(sa.Numeric(18, 2), default=Decimal(0))

    # Eligibility rules: the same columns and semantics as LoanProduct.
    min_grade: Mapped[str | None] = mapped_column(sa.String(8))
    public_credit_classes: Mapped[str] = mapped_column(sa.String(8), default="")
    min_years_operating: Mapped[Decimal | None] = mapped_column(sa.Numeric(5, 1))
    min_annual_sales: Mapped[Decimal | None] = mapped_column(sa.Numeric(18, 2))
    min_tax_months: Mapped[int | None]
    min_social_months: Mapped[int | None]
    industries_allowed: Mapped[str] = mapped_column(sa.String(400), default="")
    industries_excluded: Mapped[str] = mapped_column(sa.String(400), default="")
    regions_allowed: Mapped[str] = mapped_column(sa.String(400), default="")
    regions_excluded: Mapped[str] = mapped_column(sa.String(400), default="")
    size_classes: Mapped[str] = mapped_column(sa.String(40), default="")
    required_scopes: Mapped[str] = mapped_column(sa.String(100), default="")
    # Conditions on the loan attached (it is always disbursed within the period).
    first_loan_only: Mapped[bool] = mapped_column(default=False)
    product_types: Mapped[str] = mapped_column(sa.String(200), default="")  # "credit,first_loan"

    status: Mapped[PolicyStatus] = mapped_column(
        value_enum(PolicyStatus, 16), default=PolicyStatus.DRAFT, index=True
    )
    created_by_user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    published_at: Mapped[dt.datetime | None]
    closed_at: Mapped[dt.datetime | None]

    __table_args__ = (
        sa.CheckConstraint("total_budget > 0", name="budget_positive"),
        sa.CheckConstraint(
            "approved_total >= 0 AND approved_total <= total_budget", name="within_budget"
        ),
        sa.CheckConstraint("period_end >= period_start", name="period_range"),
    )

    @staticmethod
    def split(value: str) -> list[str]:
        return [v for v in (value or "").split(",") if v]

    @property
    def remaining_budget(self) -> Decimal:
        return Decimal(self.total_budget) - Decimal(self.approved_total)

    def __repr__(self) -> str:
        return f"<SupportPolicy {self.id} {self.name!r} {self.status.value}>"


class PolicyApplication(Base):
    __tablename__ = "policy_application"

    id: Mapped[int] = mapped_column(primary_key=True)
    policy_id: Mapped[int] = mapped_column(sa.ForeignKey("support_policy.id"), index=True)
    enterprise_id: Mapped[int] = mapped_column(sa.ForeignKey("enterprise.id"), index=True)
    loan_id: Mapped[int] = mapped_column(sa.ForeignKey("loan.id"))
    guarantee_fee_paid: Mapped[Decimal | None] = mapped_column(sa.Numeric(18, 2))
    amount_claimed: Mapped[Decimal] = mapped_column(sa.Numeric(18, 2))
    working: Mapped[str] = mapped_column(sa.Text, default="")  # the arithmetic, in numbers
    status: Mapped[PolicyApplicationStatus] = mapped_column(
        value_enum(PolicyApplicationStatus, 16),
        default=PolicyApplicationStatus.SUBMITTED,
        index=True,
    )
    submitted_by_user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"))
    submitted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    reviewer_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    reason: Mapped[str] = mapped_column(sa.String(1000), default="")
    approved_amount: Mapped[Decimal | None] = mapped_column(sa.Numeric(18, 2))
    decided_at: Mapped[dt.datetime | None]

    policy: Mapped[SupportPolicy] = relationship()
    enterprise: Mapped[Enterprise] = relationship()
    loan: Mapped[Loan] = relationship()

    __table_args__ = (
        sa.UniqueConstraint("policy_id", "loan_id", name="uq_policy_application_policy_loan"),
        sa.CheckConstraint("amount_claimed >= 0", name="claimed_non_negative"),
        sa.CheckConstraint(
            "approved_amount IS NULL OR approved_amount > 0", name="approved_positive"
        ),
        sa.CheckConstraint(
            "guarantee_fee_paid IS NULL OR guarantee_fee_paid > 0", name="fee_positive"
        ),
    )
