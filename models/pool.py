"""The risk-compensation pool (风险补偿资金池): settings, coverage of loans, double-entry
ledger and claims.

Chart of accounts (every :class:`PoolLedgerEntry` debits one account and credits another by
the same positive amount, so all accounts always sum to zero):

=================  =========================================================================
account            meaning (its balance = debits − credits)
=================  =========================================================================
``cash``           money in the pool (= ``RiskPool.balance``)
``funding``        money contributed by the fiscal authorities (negative: a source)
``recovered``      the pool's share of recoveries after a payout (negative: a source)
``paid_out``       money paid to banks on approved claims (positive: a use)
``claim_losses``   approved claims, recognised when approved (positive)
``claims_payable`` approved claims not yet paid (negative while owed; 0 when settled)
``exposure``       coverage promised on active covered loans (= ``RiskPool.exposure``; memo)
``commitments``    the contra of ``exposure`` (memo)
=================  =========================================================================

Entries by kind: deposit ``cash ← funding``; reserve ``exposure ← commitments``; release
``commitments ← exposure`` (repayment, closing, or a claim taking the coverage over); claim
``claim_losses ← claims_payable``; payout ``claims_payable ← cash`` … written as
(debit, credit) pairs in :mod:`app.services.pool`.

``RiskPool.balance`` and ``exposure`` are running totals kept in the same transaction as the
entries (the row is the lock every change takes); CHECK constraints refuse a negative balance
or exposure whatever the code does.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, utcnow, value_enum
from models.loan import Loan
from models.organization import Organization


class PoolAccount(enum.StrEnum):
    CASH = "cash"
    FUNDING = "funding"
    RECOVERED = "recovered"
    PAID_OUT = "paid_out"
    CLAIM_LOSSES = "claim_losses"
    CLAIMS_PAYABLE = "claims_payable"
    EXPOSURE = "exposure"
    COMMITMENTS = "commitments"


class PoolEntryKind(enum.StrEnum):
    DEPOSIT = "deposit"
    RESERVE = "reserve"
    RELEASE = "release"
    CLAIM = "claim"
    PAYOUT = "payout"
    RECOVERY = "recovery"


class CoverageStatus(enum.StrEnum):
    RESERVED = "reserved"  # the loan is active (or defaulted, no claim paid yet)
    RELEASED = "released"  # repaid / closed: nothing more to cover
    CLAIMED = "claimed"  # a claim was approved: the coverage became a payment


class ClaimStatus(enum.StrEnum):
    FILED = "filed"
    APPROVED = "approved"  # approved, waiting for money in the pool
    PAID = "paid"
    REJECTED = "rejected"


class RiskPool(Base):
    __tablename__ = "risk_pool"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    funding_target: Mapped[Decimal] = mapped_column(sa.Numeric(18, 2))  # CNY
    # Share of the principal loss the pool bears (0.30–0.50 typical), higher for 首贷.
    coverage_ratio: Mapped[Decimal] = mapped_column(sa.Numeric(5, 4))
    first_loan_ratio: Mapped[Decimal] = mapped_column(sa.Numeric(5, 4))
    per_loan_cap: Mapped[Decimal] = mapped_column(sa.Numeric(18, 2))  # CNY covered per loan
    per_bank_cap: Mapped[Decimal] = mapped_column(sa.Numeric(18, 2))  # CNY covered per bank
    leverage: Mapped[Decimal] = mapped_column(sa.Numeric(6, 2))  # exposure ≤ k × balance
    # Eligibility. Empty = no rule of that kind.
    size_classes: Mapped[str] = mapped_column(sa.String(40), default="")  # "micro,small"
    first_loan_only: Mapped[bool] = mapped_column(default=False)
    min_grade: Mapped[str | None] = mapped_column(sa.String(8))
    region_prefixes: Mapped[str] = mapped_column(sa.String(400), default="")  # "35,4403"
    exclude_serious_dishonesty: Mapped[bool] = mapped_column(default=True)
    period_start: Mapped[dt.date]
    period_end: Mapped[dt.date]
    # Running totals, changed only together with ledger entries (see the module docstring).
    balance: Mapped[Decimal] = mapped_column(sa.Numeric(18, 2), default=Decimal(0))
    exposure: Mapped[Decimal] = mapped_column(sa.Numeric(18, 2), default=Decimal(0))
    claims_payable: Mapped[Decimal] = mapped_column(sa.Numeric(18, 2), default=Decimal(0))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        sa.CheckConstraint("balance >= 0", name="balance_non_negative"),
        sa.CheckConstraint("exposure >= 0", name="exposure_non_negative"),
        sa.CheckConstraint("claims_payable >= 0", name="claims_payable_non_negative"),
        sa.CheckConstraint(
            "coverage_ratio > 0 AND coverage_ratio <= 1 AND first_loan_ratio >= coverage_ratio "
            "AND first_loan_ratio <= 1",
            name="ratios",
        ),
        sa.CheckConstraint("per_loan_cap > 0 AND per_bank_cap >= per_loan_cap", name="caps"),
        sa.CheckConstraint("leverage >= 1", name="leverage_at_least_one"),
        sa.CheckConstraint("period_end > period_start", name="period"),
    )

    @property
    def capacity(self) -> Decimal:
        """The most exposure the balance allows: leverage × balance."""
        return (self.leverage * self.balance).quantize(Decimal("0.01"))

    @property
    def headroom(self) -> Decimal:
        """Coverage that can still be promised (never negative)."""
        return max(self.capacity - self.exposure, Decimal(0))

    def __repr__(self) -> str:
        return f"<RiskPool {self.id} {self.name!r} balance={self.balance} exposure={self.exposure}>"


class PoolCoverage(Base):
    """One covered loan: reserved once (``loan_id`` is unique)."""

    __tablename__ = "pool_coverage"

    id: Mapped[int] = mapped_column(primary_key=True)
    pool_id: Mapped[int] = mapped_column(sa.ForeignKey("risk_pool.id"), index=True)
    loan_id: Mapped[int] = mapped_column(sa.ForeignKey("loan.id"), unique=True)
    bank_org_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"), index=True)
    ratio: Mapped[Decimal] = mapped_column(sa.Numeric(5, 4))
    covered_amount: Mapped[Decimal] = mapped_column(sa.Numeric(18, 2))  # CNY
    first_loan: Mapped[bool]
    status: Mapped[CoverageStatus] = mapped_column(
        value_enum(CoverageStatus, 16), default=CoverageStatus.RESERVED, index=True
    )
    reserved_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[dt.datetime | None]

    loan: Mapped[Loan] = relationship()
    pool: Mapped[RiskPool] = relationship()

    __table_args__ = (
        sa.CheckConstraint("covered_amount > 0", name="covered_positive"),
        sa.CheckConstraint("ratio > 0 AND ratio <= 1", name="ratio_range"),
    )


class PoolLedgerEntry(Base):
    __tablename__ = "pool_ledger_entry"

    id: Mapped[int] = mapped_column(primary_key=True)
    pool_id: Mapped[int] = mapped_column(sa.ForeignKey("risk_pool.id"), index=True)
    kind: Mapped[PoolEntryKind] = mapped_column(value_enum(PoolEntryKind, 16))
    debit: Mapped[PoolAccount] = mapped_column(value_enum(PoolAccount, 16))
    credit: Mapped[PoolAccount] = mapped_column(value_enum(PoolAccount, 16))
    amount: Mapped[Decimal] = mapped_column(sa.Numeric(18, 2))
    loan_id: Mapped[int | None] = mapped_column(sa.ForeignKey("loan.id"), index=True)
    bank_org_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organization.id"))
    claim_id: Mapped[int | None] = mapped_column(sa.ForeignKey("pool_claim.id"))
    # One request → its entries; "<request key>#<leg>" so a replay writes nothing.
    idempotency_key: Mapped[str] = mapped_column(sa.String(160), unique=True)
    memo: Mapped[str] = mapped_column(sa.String(300), default="")
    created_by: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        sa.CheckConstraint("debit <> credit", name="two_accounts"),
    )


class PoolClaim(Base):
    """A bank's claim on a defaulted covered loan, reviewed by the office."""

    __tablename__ = "pool_claim"

    id: Mapped[int] = mapped_column(primary_key=True)
    pool_id: Mapped[int] = mapped_column(sa.ForeignKey("risk_pool.id"), index=True)
    coverage_id: Mapped[int] = mapped_column(sa.ForeignKey("pool_coverage.id"), index=True)
    loan_id: Mapped[int] = mapped_column(sa.ForeignKey("loan.id"), index=True)
    bank_org_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"), index=True)
    principal_loss: Mapped[Decimal] = mapped_column(sa.Numeric(18, 2))  # CNY
    amount_claimed: Mapped[Decimal] = mapped_column(sa.Numeric(18, 2))  # coverage × loss, capped
    evidence: Mapped[str] = mapped_column(sa.Text)
    evidence_files: Mapped[str] = mapped_column(sa.String(1000), default="")
    status: Mapped[ClaimStatus] = mapped_column(
        value_enum(ClaimStatus, 16), default=ClaimStatus.FILED, index=True
    )
    filed_by: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"))
    filed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    reviewed_by: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    reviewed_at: Mapped[dt.datetime | None]
    decision_reason: Mapped[str | None] = mapped_column(sa.String(1000))
    paid_at: Mapped[dt.datetime | None]
    recovered_to_pool: Mapped[Decimal] = mapped_column(sa.Numeric(18, 2), default=Decimal(0))

    loan: Mapped[Loan] = relationship()
    bank: Mapped[Organization] = relationship()
    coverage: Mapped[PoolCoverage] = relationship()

    __table_args__ = (
        sa.CheckConstraint("principal_loss > 0", name="loss_positive"),
        sa.CheckConstraint("amount_claimed > 0", name="amount_positive"),
        sa.CheckConstraint(
            "status <> 'rejected' OR decision_reason IS NOT NULL", name="reject_has_reason"
        ),
    )
