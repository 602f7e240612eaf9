"""The office's targets for the figures it reports upward (settings, with their history)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow


class KpiTarget(Base):
    """One setting of one target. Changing a target adds a row; the latest row counts."""

    __tablename__ = "kpi_target"

    id: Mapped[int] = mapped_column(primary_key=True)
    metric: Mapped[str] = mapped_column(sa.String(40), index=True)
    value: Mapped[Decimal] = mapped_column(sa.Numeric(12, 2))
    set_by_user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"))
    set_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
