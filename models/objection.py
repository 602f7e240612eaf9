"""Objections (异议) to records or the credit profile, and credit repair (信用修复).

Policy: 黑龙江省社会信用条例 (reference/004). Art. 39: a credit subject may object to its
credit information; the handling unit marks the objection (异议标注) within one working day
of receiving it and decides within three working days (seven when another unit must help
verify); an upheld objection corrects the information, a rejected one gives the reason.
Art. 40: a subject that has corrected its dishonest conduct may apply for credit repair; once
repaired the dishonesty information is no longer published.

Nothing here is overwritten: an upheld objection or an approved repair adds a new version of
the source record (``corrected_record_id`` / ``new_record_id`` point at it); the disputed
version stays as it was.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, utcnow, value_enum
from models.enterprise import Enterprise
from models.records import RecordId


class ObjectionStatus(enum.StrEnum):
    FILED = "filed"
    FLAGGED = "flagged"  # 异议标注: the disputed information is marked as under objection
    UPHELD = "upheld"
    REJECTED = "rejected"


OPEN_OBJECTION_STATUSES = frozenset({ObjectionStatus.FILED, ObjectionStatus.FLAGGED})


class ObjectionTarget(enum.StrEnum):
    RECORD = "record"
    PROFILE = "profile"


class RepairStatus(enum.StrEnum):
    APPLIED = "applied"
    APPROVED = "approved"
    REJECTED = "rejected"


class Objection(Base):
    __tablename__ = "objection"

    id: Mapped[int] = mapped_column(primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(sa.ForeignKey("enterprise.id"), index=True)
    target: Mapped[ObjectionTarget] = mapped_column(value_enum(ObjectionTarget, 8))
    # For a record: the source table, the disputed row (one version) and its natural key
    # (ml.schema.KEY_COLUMNS without uscc), so later versions of it are marked too.
    record_table: Mapped[str | None] = mapped_column(sa.String(32))
    record_id: Mapped[int | None] = mapped_column(RecordId)
    record_version: Mapped[int | None]
    record_key: Mapped[list[str] | None] = mapped_column(sa.JSON)
    # For the profile: the snapshot the enterprise objected to.
    profile_id: Mapped[int | None] = mapped_column(sa.ForeignKey("credit_profile.id"))
    text: Mapped[str] = mapped_column(sa.String(2000))
    status: Mapped[ObjectionStatus] = mapped_column(value_enum(ObjectionStatus, 10), index=True)
    needs_other_unit: Mapped[bool] = mapped_column(default=False)
    filed_by_user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"))
    filed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    flag_by: Mapped[dt.datetime]
    decide_by: Mapped[dt.datetime] = mapped_column(index=True)
    flagged_at: Mapped[dt.datetime | None]
    flagged_by_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    decided_at: Mapped[dt.datetime | None]
    decided_by_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    reason: Mapped[str | None] = mapped_column(sa.String(2000))
    # field → [old, new] as canonical text, for an upheld record objection
    correction: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    corrected_record_id: Mapped[int | None] = mapped_column(RecordId)

    enterprise: Mapped[Enterprise] = relationship()
    evidence: Mapped[list[ObjectionEvidence]] = relationship(
        back_populates="objection", order_by="ObjectionEvidence.id"
    )

    __table_args__ = (
        sa.CheckConstraint(
            "(target = 'record' AND record_table IS NOT NULL AND record_id IS NOT NULL) "
            "OR (target = 'profile' AND record_table IS NULL AND record_id IS NULL)",
            name="target_complete",
        ),
        sa.CheckConstraint(
            "status != 'rejected' OR reason IS NOT NULL", name="rejection_has_reason"
        ),
    )

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_OBJECTION_STATUSES


class CreditRepair(Base):
    """An application to repair one public-credit record (art. 40)."""

    __tablename__ = "credit_repair"

    id: Mapped[int] = mapped_column(primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(sa.ForeignKey("enterprise.id"), index=True)
    record_id: Mapped[int] = mapped_column(RecordId)  # the public_credit row applied about
    public_record_id: Mapped[str] = mapped_column(sa.String(64))  # its natural key
    text: Mapped[str] = mapped_column(sa.String(2000))
    status: Mapped[RepairStatus] = mapped_column(value_enum(RepairStatus, 10), index=True)
    applied_by_user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"))
    applied_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[dt.datetime | None]
    decided_by_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    reason: Mapped[str | None] = mapped_column(sa.String(2000))
    repaired_on: Mapped[dt.date | None]
    new_record_id: Mapped[int | None] = mapped_column(RecordId)

    enterprise: Mapped[Enterprise] = relationship()
    evidence: Mapped[list[ObjectionEvidence]] = relationship(
        back_populates="repair", order_by="ObjectionEvidence.id"
    )

    __table_args__ = (
        sa.CheckConstraint(
            "status != 'rejected' OR reason IS NOT NULL", name="rejection_has_reason"
        ),
    )


class ObjectionEvidence(Base):
    """One evidence file of an objection or a repair application.

    The bytes live under the instance path (``evidence/<stored_name>``), never under
    ``static``; only the office and the filing enterprise may download them.
    """

    __tablename__ = "objection_evidence"

    id: Mapped[int] = mapped_column(primary_key=True)
    objection_id: Mapped[int | None] = mapped_column(sa.ForeignKey("objection.id"), index=True)
    repair_id: Mapped[int | None] = mapped_column(sa.ForeignKey("credit_repair.id"), index=True)
    filename: Mapped[str] = mapped_column(sa.String(255))  # as uploaded, shown and offered back
    content_type: Mapped[str] = mapped_column(sa.String(40))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(sa.String(64))
    stored_name: Mapped[str] = mapped_column(sa.String(80), unique=True)
    uploaded_by_user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"))
    uploaded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    objection: Mapped[Objection | None] = relationship(back_populates="evidence")
    repair: Mapped[CreditRepair | None] = relationship(back_populates="evidence")

    __table_args__ = (
        sa.CheckConstraint("(objection_id IS NULL) != (repair_id IS NULL)", name="one_owner"),
        sa.CheckConstraint("size > 0", name="size_positive"),
    )
