"""Organizations, users, passwords, logins and server-side sessions."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import time
from collections.abc import MutableMapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from flask_babel import lazy_gettext as _l

from app.services import audit, workdays
from models import Enterprise, Organization, OrgKind, Role, SizeClass, User, UserSession, db
from models.base import utcnow
from models.sme_size import classify_size

_HASHERS = {
    # RFC 9106's second recommended option (64 MiB, 3 passes); argon2-cffi's default.
    "rfc_9106_low_memory": PasswordHasher.from_parameters(profiles.RFC_9106_LOW_MEMORY),
    # For the test suite only: XINYIDAI_ENV=testing; never in production (see config).
    "cheapest": PasswordHasher.from_parameters(profiles.CHEAPEST),
}
_DUMMY_HASHES: dict[str, str] = {}


class _Hasher:
    """The configured argon2id hasher (``PASSWORD_HASH_PROFILE``)."""

    @staticmethod
    def current() -> PasswordHasher:
        return _HASHERS[current_app.config.get("PASSWORD_HASH_PROFILE", "rfc_9106_low_memory")]

    def hash(self, password: str) -> str:
        return self.current().hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        return self.current().verify(password_hash, password)

    def check_needs_rehash(self, password_hash: str) -> bool:
        return self.current().check_needs_rehash(password_hash)

    def dummy_hash(self) -> str:
        """Verified against when the e-mail is unknown, so "no such user" costs the same
        time as "wrong password" and timing does not reveal which addresses have accounts."""
        profile = current_app.config.get("PASSWORD_HASH_PROFILE", "rfc_9106_low_memory")
        if profile not in _DUMMY_HASHES:
            _DUMMY_HASHES[profile] = self.hash(secrets.token_hex(16))
        return _DUMMY_HASHES[profile]


_hasher = _Hasher()

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 128


class AccountError(Exception):
    """A request that cannot be carried out; ``field`` names the form field at fault."""

    def __init__(self, message: Any, field: str | None = None) -> None:
        super().__init__(str(message))
        self.message = message
        self.field = field


class LoginRefused(AccountError):
    pass


class PermissionRefused(AccountError):
    pass


# Passwords ---------------------------------------------------------------------------


def password_problem(password: str) -> Any | None:
    """Why a new password is unacceptable, or ``None``."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return _l("Use at least %(n)d characters.", n=MIN_PASSWORD_LENGTH)
    if len(password) > MAX_PASSWORD_LENGTH:
        return _l("Use at most %(n)d characters.", n=MAX_PASSWORD_LENGTH)
    if len(set(password)) < 5:
        return _l("This password is too easy to guess: use more different characters.")
    return None


def hash_password(password: str) -> str:
    problem = password_problem(password)
    if problem is not None:
        raise AccountError(problem, field="password")
    return _hasher.hash(password)


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# Organizations and users -------------------------------------------------------------


def normalize_email(email: str) -> str:
    return email.strip().lower()


def _require_office_admin(actor: User | None) -> None:
    """``None`` is the system (CLI, seed); otherwise only the office's admins may act."""
    if actor is not None and not (actor.org_kind is OrgKind.OFFICE and actor.role is Role.ADMIN):
        raise PermissionRefused(_l("Only an administrator of the financial office may do this."))


def create_organization(actor: User | None, kind: OrgKind, name: str) -> Organization:
    """A bank or the office. Enterprises register themselves (:func:`register_enterprise`)."""
    _require_office_admin(actor)
    name = name.strip()
    if kind is OrgKind.ENTERPRISE:
        raise AccountError(_l("Enterprises register themselves."), field="kind")
    if not name:
        raise AccountError(_l("Enter a name."), field="name")
    exists = db.session.scalar(
        sa.select(Organization.id).where(Organization.kind == kind, Organization.name == name)
    )
    if exists:
        raise AccountError(_l("An organization with this name already exists."), field="name")
    org = Organization(kind=kind, name=name)
    db.session.add(org)
    db.session.flush()
    return org


def _email_taken(email: str) -> bool:
    return db.session.scalar(sa.select(User.id).where(User.email == email)) is not None


def create_user(
    actor: User | None,
    organization: Organization,
    email: str,
    display_name: str,
    role: Role,
    password: str | None = None,
) -> tuple[User, str | None]:
    """Add a user; returns it and the generated password when none was given.

    The office admin (or the system) may add users anywhere; an organization's own admin
    may add users to that organization only.
    """
    if actor is not None and not (
        actor.role is Role.ADMIN
        and (actor.org_kind is OrgKind.OFFICE or actor.organization_id == organization.id)
    ):
        raise PermissionRefused(_l("Only an administrator may add users."))
    email = normalize_email(email)
    if _email_taken(email):
        raise AccountError(_l("This e-mail address already has an account."), field="email")
    generated = None
    if password is None:
        password = generated = generate_password()
    user = User(
        organization=organization,
        email=email,
        display_name=display_name.strip() or email,
        role=role,
        password_hash=hash_password(password),
    )
    db.session.add(user)
    db.session.flush()
    return user, generated


@dataclass(frozen=True)
class EnterpriseRegistration:
    uscc: str
    name: str
    legal_representative: str
    founded_on: dt.date
    region_code: str
    industry_code: str
    employees: int
    annual_revenue: Decimal  # CNY
    total_assets: Decimal | None  # CNY
    user_name: str
    email: str
    password: str
    legal_rep_id_number: str | None = None  # stored encrypted
    legal_rep_phone: str | None = None  # stored encrypted


def register_enterprise(reg: EnterpriseRegistration) -> User:
    """Create the enterprise, its organization and its first (admin) user.

    Raises :class:`AccountError` naming the field when the USCC or e-mail is already
    registered, or a value is invalid; nothing is written then.
    """
    from models.codes import normalize_id_number, normalize_mobile, normalize_uscc

    uscc = normalize_uscc(reg.uscc)
    id_number = normalize_id_number(reg.legal_rep_id_number) if reg.legal_rep_id_number else None
    phone = normalize_mobile(reg.legal_rep_phone) if reg.legal_rep_phone else None
    if db.session.scalar(sa.select(Enterprise.id).where(Enterprise.uscc == uscc)):
        raise AccountError(
            _l("This unified social credit code is already registered."), field="uscc"
        )
    email = normalize_email(reg.email)
    if _email_taken(email):
        raise AccountError(_l("This e-mail address already has an account."), field="email")
    if reg.founded_on > workdays.local_date():
        raise AccountError(_l("The founding date cannot be in the future."), field="founded_on")
    password_hash = hash_password(reg.password)
    size = classify_size(reg.industry_code, reg.employees, reg.annual_revenue, reg.total_assets)

    org = Organization(kind=OrgKind.ENTERPRISE, name=reg.name.strip())
    enterprise = Enterprise(
        organization=org,
        uscc=uscc,
        name=reg.name.strip(),
        legal_representative=reg.legal_representative.strip(),
        legal_rep_id_number=id_number,
        legal_rep_phone=phone,
        founded_on=reg.founded_on,
        region_code=reg.region_code,
        industry_code=reg.industry_code,
        employees=reg.employees,
        annual_revenue=reg.annual_revenue,
        total_assets=reg.total_assets,
        size_class=SizeClass(size),
    )
    user = User(
        organization=org,
        email=email,
        display_name=reg.user_name.strip(),
        role=Role.ADMIN,
        password_hash=password_hash,
    )
    db.session.add_all([org, enterprise, user])
    db.session.flush()
    return user


def may_manage_users(actor: User | None, organization: Organization) -> bool:
    """Who manages the users of a bank or of the office: the office's administrators (any
    bank's and the office's), a bank's own administrators (their bank's only); ``None`` is
    the system. Nobody manages enterprises' users here (each enterprise has its own)."""
    if actor is None:
        return True
    if actor.role is not Role.ADMIN or organization.kind is OrgKind.ENTERPRISE:
        return False
    return actor.org_kind is OrgKind.OFFICE or actor.organization_id == organization.id


def _require_user_manager(actor: User | None, user: User) -> None:
    if not may_manage_users(actor, user.organization):
        raise PermissionRefused(_l("You may not manage this organization's users."))
    if actor is not None and actor.id == user.id:
        raise PermissionRefused(_l("You cannot change your own account here."))
    if is_service_user(user):
        raise PermissionRefused(
            _l("This is an API client's service account: manage the client, not the user.")
        )


def is_service_user(user: User) -> bool:
    """The non-login user an API client acts through (it must never be enabled by hand)."""
    from models.provider import ProviderClient

    return (
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(ProviderClient)
            .where(ProviderClient.service_user_id == user.id)
        )
        or 0
    ) > 0


def set_user_active(actor: User | None, user: User, active: bool) -> None:
    """Enable or disable a user; disabling ends every session of theirs at once (audited).

    Raises :class:`PermissionRefused` unless :func:`may_manage_users`, or for oneself."""
    _require_user_manager(actor, user)
    user.is_active = active
    if not active:
        revoke_all_sessions(user)
    db.session.flush()
    audit.record(
        "user.enable" if active else "user.disable",
        actor=actor,
        object_type="user",
        object_id=user.id,
        details={"email": user.email, "organization_id": user.organization_id},
    )


def add_user(
    actor: User | None, organization: Organization, email: str, display_name: str, role: Role
) -> tuple[User, str]:
    """:func:`create_user` with a generated one-time password for a bank or the office, by
    whoever :func:`may_manage_users` (audited, without the password)."""
    if not may_manage_users(actor, organization):
        raise PermissionRefused(_l("You may not manage this organization's users."))
    password = generate_password()
    user, _ = create_user(actor, organization, email, display_name, role, password)
    audit.record(
        "user.create",
        actor=actor,
        object_type="user",
        object_id=user.id,
        details={"email": user.email, "organization_id": organization.id, "role": role.value},
    )
    return user, password


def change_role(actor: User | None, user: User, role: Role) -> None:
    """Give ``user`` another role (audited); their sessions go on with the new role."""
    _require_user_manager(actor, user)
    if user.role is role:
        return
    previous = user.role
    user.role = role
    db.session.flush()
    audit.record(
        "user.role",
        actor=actor,
        object_type="user",
        object_id=user.id,
        details={"email": user.email, "from": previous.value, "to": role.value},
    )


def reset_password(actor: User | None, user: User) -> str:
    """Give ``user`` a new generated password, returned once; their sessions end and a lock
    after failed logins is lifted (audited, without the password)."""
    _require_user_manager(actor, user)
    password = generate_password()
    set_password(user, password)
    revoke_all_sessions(user)
    audit.record(
        "user.password_reset",
        actor=actor,
        object_type="user",
        object_id=user.id,
        details={"email": user.email},
    )
    return password


def set_password(user: User, new_password: str) -> None:
    user.password_hash = hash_password(new_password)
    user.failed_logins = 0
    user.locked_until = None
    db.session.flush()


def confirm_password(user: User, password: str, now: dt.datetime | None = None) -> None:
    """Re-authentication: raises :class:`AccountError` unless ``password`` is the user's;
    a wrong one counts as a failed login (lockout applies; the caller commits either way)."""
    now = now or utcnow()
    if user.locked_until is not None and user.locked_until > now:
        raise AccountError(_l("Too many failed attempts. Try again later."), field="password")
    if not _verify(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= current_app.config["LOGIN_MAX_FAILURES"]:
            user.locked_until = now + dt.timedelta(minutes=current_app.config["LOGIN_LOCK_MINUTES"])
            user.failed_logins = 0
        db.session.flush()
        raise AccountError(_l("The password is not correct."), field="password")
    user.failed_logins = 0
    db.session.flush()


def change_password(user: User, current_password: str, new_password: str) -> None:
    """Change one's own password; every other session of the user ends."""
    if not _verify(user.password_hash, current_password):
        raise AccountError(_l("The current password is not correct."), field="current_password")
    set_password(user, new_password)
    revoke_all_sessions(user, keep_token=user.session_token)


# Login -------------------------------------------------------------------------------


def authenticate(email: str, password: str, now: dt.datetime | None = None) -> User:
    """The user with these credentials, or :class:`LoginRefused`.

    Unknown e-mail and wrong password give the same message. After ``LOGIN_MAX_FAILURES``
    consecutive failures the account is locked for ``LOGIN_LOCK_MINUTES``, even for the
    right password. The failure counter is flushed, so the caller must commit also when
    this raises.
    """
    now = now or utcnow()
    cfg = current_app.config
    user = db.session.scalar(sa.select(User).where(User.email == normalize_email(email)))
    if user is None:
        _verify(_hasher.dummy_hash(), password)
        raise LoginRefused(_l("Wrong e-mail address or password."))
    if user.locked_until is not None and user.locked_until > now:
        minutes = max(1, int((user.locked_until - now).total_seconds() // 60) + 1)
        raise LoginRefused(
            _l(
                "Too many failed attempts. This account is locked; try again in %(n)d minutes.",
                n=minutes,
            )
        )
    if not _verify(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= cfg["LOGIN_MAX_FAILURES"]:
            user.locked_until = now + dt.timedelta(minutes=cfg["LOGIN_LOCK_MINUTES"])
            user.failed_logins = 0
        db.session.flush()
        raise LoginRefused(_l("Wrong e-mail address or password."))
    if not user.is_active or not user.organization.is_active:
        raise LoginRefused(_l("This account is disabled. Contact your administrator."))
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    db.session.flush()
    return user


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(
    user: User, ip_address: str | None, user_agent: str | None, now: dt.datetime | None = None
) -> str:
    """Open a server-side session; returns the opaque token to keep in the cookie."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    hours = current_app.config["SESSION_ABSOLUTE_HOURS"]
    db.session.add(
        UserSession(
            user=user,
            token_hash=_token_hash(token),
            created_at=now,
            last_seen_at=now,
            expires_at=now + dt.timedelta(hours=hours),
            ip_address=(ip_address or "")[:45] or None,
            user_agent=(user_agent or "")[:300] or None,
        )
    )
    db.session.flush()
    user.session_token = token
    return token


def load_session_user(token: str, now: dt.datetime | None = None) -> User | None:
    """The user of a live session: not revoked, not past its absolute lifetime, user active."""
    row = db.session.execute(
        _live_session(), {"token_hash": _token_hash(token), "now": now or utcnow()}
    ).first()
    if row is None:
        return None
    user = row.User
    if not user.organization.is_active:
        return None
    user.session_token = token
    user.unread_at_load = row.unread
    return user


@cache
def _live_session() -> sa.Select[UserSession, User, int]:
    """The SELECT behind :func:`load_session_user` (binds ``token_hash`` and ``now``), built
    once: every request of a logged-in user runs it. It also counts the user's unread
    notifications, which every page's layout shows: one round trip instead of two."""
    from app.services import notifications  # it imports this module

    return (
        sa.select(UserSession, User, notifications.unread_count_column(User.id).label("unread"))
        .join(User, UserSession.user_id == User.id)
        .where(
            UserSession.token_hash == sa.bindparam("token_hash"),
            UserSession.revoked_at.is_(None),
            UserSession.expires_at > sa.bindparam("now"),
            User.is_active.is_(True),
        )
    )


def end_session(token: str | None, now: dt.datetime | None = None) -> None:
    if not token:
        return
    db.session.execute(
        sa.update(UserSession)
        .where(UserSession.token_hash == _token_hash(token), UserSession.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
    )


def revoke_all_sessions(user: User, keep_token: str | None = None) -> None:
    stmt = sa.update(UserSession).where(
        UserSession.user_id == user.id, UserSession.revoked_at.is_(None)
    )
    if keep_token:
        stmt = stmt.where(UserSession.token_hash != _token_hash(keep_token))
    db.session.execute(stmt.values(revoked_at=utcnow()))


def idle_session_expired(session: MutableMapping[str, Any], idle_minutes: int) -> bool:
    """Whether a logged-in cookie session has been idle too long; refreshes its clock if not."""
    if "_user_id" not in session:
        return False
    now = time.time()
    seen = session.get("seen")
    if isinstance(seen, int | float) and now - seen > idle_minutes * 60:
        return True
    session["seen"] = int(now)
    return False


def uscc_registered(uscc: str) -> bool:
    return db.session.scalar(sa.select(Enterprise.id).where(Enterprise.uscc == uscc)) is not None
