"""Risk-model versions: an ``ml`` artifact registered on the platform and its approval state.

Only an *approved* version scores production profiles, and at most one version of each kind is
approved at a time (a partial unique index holds that even under concurrent approvals).
Rows are never deleted: a replaced version is *retired*, so every profile keeps pointing at the
model that computed it.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow, value_enum


class ModelKind(enum.StrEnum):
    SCORECARD = "scorecard"
    GBM = "gbm"


class ModelStatus(enum.StrEnum):
    CANDIDATE = "candidate"
    APPROVED = "approved"
    RETIRED = "retired"


class ModelVersion(Base):
    __tablename__ = "model_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[ModelKind] = mapped_column(value_enum(ModelKind, 16))
    # Relative to the configured MODEL_ROOT (the only directory models are loaded from).
    directory: Mapped[str] = mapped_column(sa.String(500))
    # ``content_hash`` of the artifact's manifest (sha256 over its files' hashes).
    content_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    features: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    training_summary: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    validation_report: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    status: Mapped[ModelStatus] = mapped_column(
        value_enum(ModelStatus, 16), default=ModelStatus.CANDIDATE, index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    approved_at: Mapped[dt.datetime | None]
    approved_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    retired_at: Mapped[dt.datetime | None]
    retired_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))

    __table_args__ = (
        sa.Index(
            "uq_model_version_one_approved_per_kind",
            "kind",
            unique=True,
            postgresql_where=sa.text("status = 'approved'"),
            sqlite_where=sa.text("status = 'approved'"),
        ),
    )

    @property
    def label(self) -> str:
        return f"{self.kind.value} #{self.id} ({self.content_hash[:12]})"

    def __repr__(self) -> str:
        return f"<ModelVersion {self.id} {self.kind.value} {self.status.value}>"
