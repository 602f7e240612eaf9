"""Users, their role inside their organization, and their server-side login sessions."""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, utcnow, value_enum
from models.encryption import EncryptedText
from models.organization import Organization, OrgKind


class Role(enum.StrEnum):
    """A user's role inside their own organization (not across organizations)."""

    ADMIN = "admin"
    OFFICER = "officer"
    VIEWER = "viewer"


class User(Base):
    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id"), index=True)
    # Stored lower-cased; the unique index is what stops a second account with the same address.
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    display_name: Mapped[str] = mapped_column(sa.String(100))
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    role: Mapped[Role] = mapped_column(value_enum(Role, 16))
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[dt.datetime | None]
    # Consecutive failed logins; reset on success. Past the limit the account is locked
    # until ``locked_until`` (see app.services.accounts.authenticate).
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[dt.datetime | None]
    # TOTP two-factor (RFC 6238): the secret is stored encrypted; it is in use once
    # ``totp_enabled_at`` is set (before that an enrolment is pending). The last accepted
    # time step is kept so a code is never accepted twice.
    totp_secret: Mapped[str | None] = mapped_column(EncryptedText("user_account.totp_secret"))
    totp_enabled_at: Mapped[dt.datetime | None]
    totp_last_counter: Mapped[int | None] = mapped_column(sa.BigInteger)

    organization: Mapped[Organization] = relationship(back_populates="users", lazy="joined")
    sessions: Mapped[list[UserSession]] = relationship(back_populates="user")
    recovery_codes: Mapped[list[RecoveryCode]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )

    __allow_unmapped__ = True  # for ``session_token`` below, a plain instance attribute

    # Set by the session loader: the opaque id of the login session this instance was
    # loaded through. Flask-Login stores it in the cookie instead of the user id, so a
    # revoked session is refused on its very next request.
    session_token: str | None = None
    # Also set by the session loader: the user's unread notifications as that same SELECT
    # counted them, for the layout's badge (``notifications.unread_count``); None once
    # anything in the request changed them, or when not loaded through a session.
    unread_at_load: int | None = None

    @property
    def two_factor_enabled(self) -> bool:
        return self.totp_enabled_at is not None and self.totp_secret is not None

    @property
    def org_kind(self) -> OrgKind:
        return self.organization.kind

    # Flask-Login protocol -------------------------------------------------------------
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str | None:
        return self.session_token

    def __repr__(self) -> str:
        return f"<User {self.email} {self.role.value}>"


class UserSession(Base):
    """One login of one user on one browser. Logout or disabling the user revokes it.

    Only a SHA-256 of the token is stored, so a database dump does not hand out live
    sessions.
    """

    __tablename__ = "user_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"), index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    ip_address: Mapped[str | None] = mapped_column(sa.String(45))
    user_agent: Mapped[str | None] = mapped_column(sa.String(300))

    user: Mapped[User] = relationship(back_populates="sessions")


class RecoveryCode(Base):
    """A single-use two-factor recovery code; only its SHA-256 is stored."""

    __tablename__ = "user_recovery_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    used_at: Mapped[dt.datetime | None]

    user: Mapped[User] = relationship(back_populates="recovery_codes")
