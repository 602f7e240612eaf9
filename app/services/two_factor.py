"""TOTP two-factor authentication (RFC 6238, pyotp) and single-use recovery codes.

The secret is stored encrypted (``User.totp_secret``, see :mod:`app.services.crypto`). A code
is accepted for the current 30-second step and one step either side (clock drift), and never
twice: the last accepted step is stored and only later steps are accepted. Recovery codes are
random, shown once, stored as SHA-256 and each works once. Wrong codes count as failed logins,
so the account lockout applies to the second factor too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

import pyotp
import segno
import sqlalchemy as sa
from flask import current_app
from flask_babel import lazy_gettext as _l

from app.services import audit
from app.services.accounts import AccountError
from models import RecoveryCode, User, db
from models.base import utcnow

ISSUER = "Xinyidai"
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret)


def begin_enrolment(user: User) -> str:
    """A new pending secret for ``user`` (replacing a pending one); returns it."""
    if user.two_factor_enabled:
        raise AccountError(_l("Two-factor authentication is already on."))
    user.totp_secret = pyotp.random_base32()
    user.totp_enabled_at = None
    user.totp_last_counter = None
    db.session.flush()
    return user.totp_secret


def provisioning_uri(user: User) -> str:
    if user.totp_secret is None:
        raise AccountError(_l("Start the enrolment again."))
    return _totp(user.totp_secret).provisioning_uri(name=user.email, issuer_name=ISSUER)


def qr_data_uri(uri: str) -> str:
    """The otpauth URI as a QR code: an SVG rendered here, as a ``data:`` image URI (no script,
    no inline style, allowed by the CSP's ``img-src 'self' data:``)."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=5, border=2))


def _counter(now: dt.datetime) -> int:
    return int(now.timestamp()) // 30


def _accept_totp(user: User, code: str, now: dt.datetime) -> bool:
    """Whether ``code`` is valid now and later than the last accepted one; records it."""
    if user.totp_secret is None or not (len(code) == 6 and code.isdigit()):
        return False
    totp = _totp(user.totp_secret)
    current = _counter(now)
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            if user.totp_last_counter is not None and step <= user.totp_last_counter:
                return False  # replayed within its window
            user.totp_last_counter = step
            return True
    return False


def _hash_recovery(code: str) -> str:
    return hashlib.sha256(code.replace("-", "").strip().lower().encode()).hexdigest()


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


def new_recovery_codes(user: User) -> list[str]:
    """Replace ``user``'s recovery codes with :data:`RECOVERY_CODES` new ones, returned once."""
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODES)]
    db.session.add_all(RecoveryCode(user_id=user.id, code_hash=_hash_recovery(c)) for c in codes)
    db.session.flush()
    audit.record(
        "user.2fa_recovery_codes", actor=user, object_type="user", object_id=user.id, details={}
    )
    return codes


def remaining_recovery_codes(user: User) -> int:
    return int(
        db.session.scalar(
            sa.select(sa.func.count(RecoveryCode.id)).where(
                RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
            )
        )
        or 0
    )


def confirm_enrolment(user: User, code: str, now: dt.datetime | None = None) -> list[str]:
    """Turn two-factor on when ``code`` matches the pending secret; returns the recovery codes."""
    now = now or utcnow()
    if user.two_factor_enabled:
        raise AccountError(_l("Two-factor authentication is already on."))
    if user.totp_secret is None:
        raise AccountError(_l("Start the enrolment again."), field="code")
    if not _accept_totp(user, _clean(code), now):
        raise AccountError(
            _l("This code is not correct. Check your device's clock and try the next code."),
            field="code",
        )
    user.totp_enabled_at = now
    db.session.flush()
    audit.record("user.2fa_enable", actor=user, object_type="user", object_id=user.id, details={})
    return new_recovery_codes(user)


def _clean(code: str) -> str:
    return "".join(code.split())


def verify(user: User, code: str, now: dt.datetime | None = None) -> str:
    """Check a second-factor ``code`` (TOTP or a recovery code) of an enrolled user.

    Returns ``"totp"`` or ``"recovery"``; raises :class:`AccountError` otherwise and counts a
    failed login (the caller commits in both cases).
    """
    now = now or utcnow()
    code = _clean(code)
    if _accept_totp(user, code, now):
        db.session.flush()
        return "totp"
    if len(code.replace("-", "")) == 10:
        row = db.session.scalar(
            sa.select(RecoveryCode).where(
                RecoveryCode.user_id == user.id,
                RecoveryCode.code_hash == _hash_recovery(code),
                RecoveryCode.used_at.is_(None),
            )
        )
        if row is not None:
            row.used_at = now
            db.session.flush()
            audit.record(
                "user.2fa_recovery_used",
                actor=user,
                object_type="user",
                object_id=user.id,
                details={"remaining": remaining_recovery_codes(user)},
            )
            return "recovery"
    user.failed_logins += 1
    if user.failed_logins >= current_app.config["LOGIN_MAX_FAILURES"]:
        user.locked_until = now + dt.timedelta(minutes=current_app.config["LOGIN_LOCK_MINUTES"])
        user.failed_logins = 0
    db.session.flush()
    raise AccountError(_l("This code is not correct or was already used."), field="code")


def disable(user: User) -> None:
    """Turn two-factor off: the secret and the recovery codes are deleted (audited)."""
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_counter = None
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    db.session.flush()
    audit.record("user.2fa_disable", actor=user, object_type="user", object_id=user.id, details={})
