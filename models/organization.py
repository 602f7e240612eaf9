"""Organizations: every user belongs to exactly one enterprise, bank or the financial office."""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, utcnow, value_enum

if TYPE_CHECKING:
    from models.enterprise import Enterprise
    from models.user import User


class OrgKind(enum.StrEnum):
    ENTERPRISE = "enterprise"
    BANK = "bank"
    OFFICE = "office"


class Organization(Base):
    __tablename__ = "organization"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[OrgKind] = mapped_column(
        value_enum(OrgKind, 16),
        index=True,
    )
    name: Mapped[str] = mapped_column(sa.String(200))
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    users: Mapped[list[User]] = relationship(back_populates="organization")
    enterprise: Mapped[Enterprise | None] = relationship(back_populates="organization")

    def __repr__(self) -> str:
        return f"<Organization {self.kind.value} {self.name!r}>"
