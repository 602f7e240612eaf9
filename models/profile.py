"""Credit profiles: one immutable snapshot per enterprise per computation (history = trend).

A snapshot is never updated: a recomputation adds a row. ``model_version_id`` is NULL when no
model was approved at the time; then PD, score and grade are NULL too and the page says why.
The *matching facts* (``annual_sales``, ``tax_months``, ``social_months``, ``grade_rank``,
``public_credit_class``) are what product eligibility rules are checked against.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, utcnow
from models.model_version import ModelVersion

PUBLIC_CREDIT_CLASSES = ("A", "B", "C", "D")


class CreditProfile(Base):
    __tablename__ = "credit_profile"

    id: Mapped[int] = mapped_column(primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(sa.ForeignKey("enterprise.id"))
    computed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # The date the features were built as of (records after it are not used).
    as_of: Mapped[dt.date]
    trigger: Mapped[str] = mapped_column(sa.String(20), default="on_demand")
    model_version_id: Mapped[int | None] = mapped_column(sa.ForeignKey("model_version.id"))

    pd: Mapped[Decimal | None] = mapped_column(sa.Numeric(12, 10))  # 12-month PD, 0..1
    score: Mapped[Decimal | None] = mapped_column(sa.Numeric(10, 2))  # credit-score points
    grade: Mapped[str | None] = mapped_column(sa.String(8))
    grade_rank: Mapped[int | None]  # 0 = best band of the model's grade table
    # [{feature, direction "against"|"for", points, value, text_zh, text_en}, ...]
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    counterfactual: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    features: Mapped[dict[str, float | None]] = mapped_column(sa.JSON, default=dict)
    # [{scope, authorized, months_covered, first_month, last_month, lag_months}, ...]
    coverage: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)

    public_credit_class: Mapped[str] = mapped_column(sa.String(1))
    # [{code, record_id, record_type, severity, decided_on, text_zh, text_en}, ...]
    public_credit_reasons: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    knockouts: Mapped[list[str]] = mapped_column(sa.JSON, default=list)

    annual_sales: Mapped[Decimal | None] = mapped_column(sa.Numeric(18, 2))  # CNY, 12 months
    tax_months: Mapped[int | None]  # continuous months of tax payment up to the latest
    social_months: Mapped[int | None]  # continuous months of social-insurance payment

    # sha256 of the snapshot's canonical content (for the report's verification code).
    content_hash: Mapped[str] = mapped_column(sa.String(64))

    model_version: Mapped[ModelVersion | None] = relationship()

    __table_args__ = (
        sa.Index("ix_credit_profile_enterprise_computed", "enterprise_id", "computed_at"),
        # An enterprise's newest snapshot, max(id) (profiles.newest_id_column): one index
        # probe, not a backward scan of the primary key filtering on the enterprise.
        sa.Index("ix_credit_profile_enterprise_id", "enterprise_id", "id"),
        sa.CheckConstraint(
            "public_credit_class IN ('A', 'B', 'C', 'D')", name="public_credit_class_known"
        ),
        sa.CheckConstraint("pd IS NULL OR (pd >= 0 AND pd <= 1)", name="pd_range"),
        sa.CheckConstraint(
            "(model_version_id IS NULL) = (grade IS NULL)", name="grade_needs_model"
        ),
    )

    @property
    def pd_float(self) -> float | None:
        return None if self.pd is None else float(self.pd)

    def __repr__(self) -> str:
        return f"<CreditProfile {self.id} enterprise={self.enterprise_id} {self.grade}>"
