"""In-app notifications: every application state change, taken needs, missed deadlines.

A notification is one row per recipient user (every active user of the organizations
concerned, except the person who acted). Its text is rendered when read, in the reader's
language, from ``kind`` and ``params`` — names and numbers, never translated text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from app.services.accounts import PermissionRefused
from models import (
    FinancingNeed,
    LoanApplication,
    Notification,
    Organization,
    OrgKind,
    User,
    db,
)
from models.base import utcnow

# kind → sentence. Parameters: enterprise, bank, product, amount (10,000 CNY), status.
MESSAGES: dict[str, Any] = {
    "application.submitted": _l(
        "%(enterprise)s applied for %(product)s (%(amount)s × 10,000 CNY)."
    ),
    "application.under_review": _l("%(bank)s started reviewing the application for %(product)s."),
    "application.offered": _l("%(bank)s made an offer on %(product)s."),
    "application.rejected": _l("%(bank)s turned down the application for %(product)s."),
    "application.accepted": _l("%(enterprise)s accepted the offer on %(product)s."),
    "application.declined": _l("%(enterprise)s declined the offer on %(product)s."),
    "application.disbursed": _l("%(bank)s disbursed the loan for %(product)s."),
    "application.withdrawn": _l("%(enterprise)s withdrew the application for %(product)s."),
    "application.routed": _l(
        "The application for %(product)s was sent on to another bank after %(bank)s "
        "missed its deadline."
    ),
    "application.overdue": _l(
        "%(bank)s has not answered the application of %(enterprise)s for %(product)s "
        "within its deadline."
    ),
    "application.no_route": _l(
        "No other bank has a product you qualify for: the application for %(product)s "
        "stays with %(bank)s."
    ),
    "need.posted": _l("%(enterprise)s needs %(amount)s × 10,000 CNY and matches your products."),
    "need.taken": _l("%(bank)s took your financing need of %(amount)s × 10,000 CNY."),
    "need.reopened": _l(
        "Your financing need of %(amount)s × 10,000 CNY is open again for other banks."
    ),
    "objection.filed": _l("%(enterprise)s filed an objection; mark it within one working day."),
    "objection.upheld": _l(
        "Your objection was upheld: the record is corrected and your profile recomputed."
    ),
    "objection.rejected": _l("Your objection was rejected: %(reason)s"),
    "repair.applied": _l("%(enterprise)s applied for credit repair."),
    "repair.approved": _l("Your credit repair was approved: the record no longer counts."),
    "repair.rejected": _l("Your credit repair was rejected: %(reason)s"),
    "claim.filed": _l("%(bank)s filed a pool claim on a defaulted loan."),
    "claim.approved": _l("The financial office approved your pool claim of %(amount)s CNY."),
    "claim.rejected": _l("The financial office rejected your pool claim: %(reason)s"),
    "policy.submitted": _l("%(enterprise)s claims %(amount)s CNY under %(policy)s."),
    "policy.approved": _l("The financial office approved %(amount)s CNY under %(policy)s."),
    "policy.rejected": _l("The financial office rejected your claim under %(policy)s: %(reason)s"),
}  # fmt: skip


def _wan(amount: Any) -> str:
    return f"{amount / 10_000:,.0f}" if amount is not None else ""


def application_params(app: LoanApplication) -> dict[str, Any]:
    return {
        "enterprise": app.enterprise.name,
        "bank": app.product.bank.name,
        "product": app.product.name,
        "amount": _wan(app.amount),
    }


def _active_users(org_ids: Iterable[int]) -> list[User]:
    ids = list(set(org_ids))
    if not ids:
        return []
    return list(
        db.session.scalars(
            sa.select(User).where(User.organization_id.in_(ids), User.is_active.is_(True))
        )
    )


def office_org_ids() -> list[int]:
    return list(
        db.session.scalars(sa.select(Organization.id).where(Organization.kind == OrgKind.OFFICE))
    )


def notify(
    org_ids: Iterable[int],
    kind: str,
    params: dict[str, Any],
    *,
    actor: User | None = None,
    application: LoanApplication | None = None,
    need: FinancingNeed | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Tell every active user of ``org_ids`` (but not ``actor``); returns how many rows."""
    if kind not in MESSAGES:
        raise ValueError(f"unknown notification kind {kind!r}")
    now = now or utcnow()
    recipients = [u for u in _active_users(org_ids) if actor is None or u.id != actor.id]
    rows = [
        Notification(
            user_id=user.id,
            kind=kind,
            params=params,
            application_id=application.id if application is not None else None,
            need_id=need.id if need is not None else None,
            created_at=now,
        )
        for user in recipients
    ]
    for user in recipients:  # the same objects as a logged-in recipient's own (one session)
        user.unread_at_load = None
    db.session.add_all(rows)
    db.session.flush()
    return len(rows)


def application_changed(
    app: LoanApplication, actor: User | None, now: dt.datetime | None = None
) -> int:
    """A state change: both sides hear of it (the actor excepted)."""
    return notify(
        (app.enterprise.organization_id, app.bank_org_id),
        f"application.{app.status.value}",
        application_params(app),
        actor=actor,
        application=app,
        now=now,
    )


# Reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shown:
    notification: Notification
    text: str


def text_of(notification: Notification) -> str:
    return str(MESSAGES[notification.kind] % notification.params)


def unread_count(user: User) -> int:
    """How many of the user's notifications are unread. Every page's layout shows it: the
    session lookup counted them already (``User.unread_at_load``) unless this request has
    changed them since (:func:`notify`, :func:`mark_read`, :func:`mark_all_read` forget
    that count), else it is counted now."""
    if user.unread_at_load is not None:
        return user.unread_at_load
    return db.session.scalar(_unread(), {"user_id": user.id}) or 0


def unread_count_column(user_id: sa.ColumnExpressionArgument[int]) -> Any:
    """The count of ``user_id``'s unread notifications as a scalar subquery (for the session
    lookup's SELECT, :func:`accounts.load_session_user`)."""
    return (
        sa.select(sa.func.count())
        .select_from(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
        .scalar_subquery()
    )


@cache
def _unread() -> sa.Select[int]:
    """Built once: the layout's count when the session lookup's is out of date."""
    return sa.select(unread_count_column(sa.bindparam("user_id")))


def for_user(user: User, limit: int = 100) -> list[Shown]:
    rows = db.session.scalars(
        sa.select(Notification)
        .where(Notification.user_id == user.id)
        .order_by(Notification.id.desc())
        .limit(limit)
    )
    return [Shown(n, text_of(n)) for n in rows]


def own(user: User, notification_id: int) -> Notification:
    """The user's notification; another user's is refused as if it did not exist."""
    notification = db.session.get(Notification, notification_id)
    if notification is None or notification.user_id != user.id:
        raise PermissionRefused(_l("No such notification."))
    return notification


def mark_read(user: User, notification: Notification, now: dt.datetime | None = None) -> None:
    if notification.user_id != user.id:
        raise PermissionRefused(_l("No such notification."))
    if notification.read_at is None:
        notification.read_at = now or utcnow()
        db.session.flush()
        user.unread_at_load = None


def mark_all_read(user: User, now: dt.datetime | None = None) -> int:
    user.unread_at_load = None
    result = db.session.execute(
        sa.update(Notification)
        .where(Notification.user_id == user.id, Notification.read_at.is_(None))
        .values(read_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
