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


class ChunkStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class JobChunk(Base):
    """One slice of a chunked job's work (e.g. 500 enterprise ids), claimed by one worker at a
    time. ``heartbeat_at`` is the claimant's last sign of life: the reaper puts a running
    chunk whose heartbeat stopped back to pending. ``claimed_by`` names the claim (worker and
    a random token), so a worker the reaper gave up on cannot also finish the chunk."""

    __tablename__ = "job_chunk"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(sa.ForeignKey("job.id", ondelete="CASCADE"))
    index: Mapped[int]
    # What to do: e.g. {"ids": [...]} or {"first": 0, "last": 499}.
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    # How many items (steps of the job) the chunk covers: its share of the progress.
    size: Mapped[int] = mapped_column(default=1)
    status: Mapped[ChunkStatus] = mapped_column(
        value_enum(ChunkStatus, 16),
        default=ChunkStatus.PENDING,
    )  # fmt: skip
    attempts: Mapped[int] = mapped_column(default=0)
    claimed_by: Mapped[str | None] = mapped_column(sa.String(120))
    heartbeat_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    result: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    message: Mapped[str | None] = mapped_column(sa.Text)

    __table_args__ = (
        sa.UniqueConstraint("job_id", "index", name="uq_job_chunk_job_index"),
        sa.Index("ix_job_chunk_status_heartbeat", "status", "heartbeat_at"),
    )
