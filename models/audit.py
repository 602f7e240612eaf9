"""The audit trail: an append-only, hash-chained log of every use of enterprise data.

``hash = SHA-256(prev_hash ‖ canonical JSON of the event)``. ``prev_hash`` is unique, so two
writers can never both extend the same event (the chain cannot fork, whatever the
database); appends are serialized by ``app.services.audit.record``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow

GENESIS_HASH = "0" * 64


class AuditEvent(Base):
    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(unique=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    actor_org_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organization.id"))
    # What happened, e.g. "authorization.grant", "profile.view", "ingestion.batch".
    action: Mapped[str] = mapped_column(sa.String(60), index=True)
    enterprise_id: Mapped[int | None] = mapped_column(sa.ForeignKey("enterprise.id"), index=True)
    # One scope, or several comma-joined (a grant of all four is 45 characters).
    scope: Mapped[str | None] = mapped_column(sa.String(100))
    object_type: Mapped[str | None] = mapped_column(sa.String(40))
    object_id: Mapped[str | None] = mapped_column(sa.String(64))
    details: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
