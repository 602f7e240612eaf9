"""Background jobs, recorded so people can watch their progress and operators can retry."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow, value_enum


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Job(Base):
    __tablename__ = "job"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(40), index=True)
    enterprise_id: Mapped[int | None] = mapped_column(sa.ForeignKey("enterprise.id"), index=True)
    authorization_id: Mapped[int | None] = mapped_column(sa.ForeignKey("authorization_grant.id"))
    status: Mapped[JobStatus] = mapped_column(
        value_enum(JobStatus, 16),
        default=JobStatus.QUEUED,
    )  # fmt: skip
    params: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    steps_total: Mapped[int] = mapped_column(default=0)
    steps_done: Mapped[int] = mapped_column(default=0)
    # Per-step outcome, e.g. {"tax": {"status": "succeeded", "records": 72}}.
    result: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    message: Mapped[str | None] = mapped_column(sa.Text)
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
