"""In-app notifications: one row per recipient user, read or not."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow


class Notification(Base):
    __tablename__ = "notification"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"))
    # What happened, e.g. "application.offered", "need.taken", "application.overdue";
    # the text is rendered in the reader's language from ``kind`` and ``params``.
    kind: Mapped[str] = mapped_column(sa.String(40))
    params: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    application_id: Mapped[int | None] = mapped_column(sa.ForeignKey("loan_application.id"))
    need_id: Mapped[int | None] = mapped_column(sa.ForeignKey("financing_need.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    read_at: Mapped[dt.datetime | None]

    __table_args__ = (sa.Index("ix_notification_user_unread", "user_id", "read_at", "id"),)
