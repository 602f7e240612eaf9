"""Ingestion batches and the rows they rejected (quarantine).

A batch is one delivery of one source's records by one provider: a CSV upload in the
office, a push through the API, or a fetch by the collection job. Re-sending a batch with the
same idempotency key (per provider) changes nothing. Every rejected row is kept with its line,
field, a machine-readable code and an English message (the office UI translates the code).

Counts: ``accepted`` rows were stored as new records (version 1), ``corrected`` rows were
stored as a new version of an existing record, ``duplicates`` were identical to the latest
version and wrote nothing, ``rejected`` rows are in :class:`RejectedRow`. Their sum is
``rows_total``.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ml import schema
from models.base import Base, utcnow, value_enum


class BatchStatus(enum.StrEnum):
    RECEIVED = "received"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class IngestionBatch(Base):
    __tablename__ = "ingestion_batch"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(sa.String(30))
    provider: Mapped[str] = mapped_column(sa.String(100))
    idempotency_key: Mapped[str] = mapped_column(sa.String(200))
    # SHA-256 over the canonical rows as received, in order: a replayed key with other
    # content is told apart from a true replay.
    content_hash: Mapped[str] = mapped_column(sa.String(64))
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    completed_at: Mapped[dt.datetime | None]
    # Who sent it: an office user, or a provider's API client id (or neither: a job).
    submitted_by_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    submitted_by_client: Mapped[str | None] = mapped_column(sa.String(100))
    status: Mapped[BatchStatus] = mapped_column(
        value_enum(BatchStatus, 16),
        default=BatchStatus.RECEIVED,
    )  # fmt: skip
    rows_total: Mapped[int] = mapped_column(default=0)
    accepted: Mapped[int] = mapped_column(default=0)
    duplicates: Mapped[int] = mapped_column(default=0)
    corrected: Mapped[int] = mapped_column(default=0)
    rejected: Mapped[int] = mapped_column(default=0)
    filename: Mapped[str | None] = mapped_column(sa.String(255))
    message: Mapped[str | None] = mapped_column(sa.Text)

    __table_args__ = (
        sa.UniqueConstraint("provider", "idempotency_key", name="uq_ingestion_batch_provider_key"),
        sa.CheckConstraint(_in("source", schema.SOURCE_TABLES), name="source_known"),
        sa.CheckConstraint(
            "accepted >= 0 AND duplicates >= 0 AND corrected >= 0 AND rejected >= 0",
            name="counts_non_negative",
        ),
    )

    @property
    def stored(self) -> int:
        """Rows that wrote a record (new or a new version)."""
        return self.accepted + self.corrected

    def __repr__(self) -> str:
        return f"<IngestionBatch {self.id} {self.source} {self.provider} {self.status.value}>"


class RejectedRow(Base):
    """A row that was not stored, kept so nothing is lost.

    ``raw`` is the row as received — except for rows refused for want of a collection grant
    (data minimisation): of those only the key columns are kept, never the values.
    ``field`` is None when the row as a whole was refused (no grant, unknown enterprise).
    """

    __tablename__ = "ingestion_rejected_row"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(sa.ForeignKey("ingestion_batch.id"), index=True)
    line: Mapped[int]
    field: Mapped[str | None] = mapped_column(sa.String(60))
    code: Mapped[str] = mapped_column(sa.String(40))
    message: Mapped[str] = mapped_column(sa.Text)
    raw: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
