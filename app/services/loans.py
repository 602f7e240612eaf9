"""Disbursement turns an accepted offer into a loan; the bank records what happens next.

Repayments, overdue notices, default and recovery become outcome labels for retraining
(:func:`outcome_labels`) and, in issue 6, pool ledger events.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import selectinload

from app.services import applications, audit, authorization, paging, pool, workdays
from app.services.accounts import AccountError, PermissionRefused
from models import (
    ApplicationStatus,
    Enterprise,
    LoanApplication,
    OrgKind,
    Role,
    User,
    db,
)
from models.base import utcnow
from models.loan import Loan, LoanEvent, LoanEventKind, LoanStatus


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    last = (dt.date(year + (month == 12), month % 12 + 1, 1) - dt.timedelta(days=1)).day
    return dt.date(year, month, min(day.day, last))


def _require_bank(actor: User, bank_org_id: int) -> None:
    if (
        actor.org_kind is not OrgKind.BANK
        or actor.organization_id != bank_org_id
        or actor.role is Role.VIEWER
    ):
        raise PermissionRefused(_l("Only the lending bank's officers record this."))


def disburse(
    actor: User, app: LoanApplication, disbursed_on: dt.date, now: dt.datetime | None = None
) -> Loan:
    """The accepted offer's amount, rate and term become a loan (status active)."""
    now = now or utcnow()
    _require_bank(actor, app.bank_org_id)
    if (
        app.status is not ApplicationStatus.ACCEPTED
        or app.offer_amount is None
        or app.offer_rate is None
    ):
        raise applications.IllegalTransition(_l("Only an accepted offer can be disbursed."))
    if disbursed_on > workdays.local_date(now):
        raise AccountError(
            _l("The disbursement date cannot be in the future."), field="disbursed_on"
        )
    earlier = db.session.scalar(
        sa.select(sa.func.count()).select_from(Loan).where(Loan.enterprise_id == app.enterprise_id)
    )
    term = app.offer_term_months or app.term_months
    loan = Loan(
        application_id=app.id, enterprise_id=app.enterprise_id, bank_org_id=app.bank_org_id,
        product_id=app.product_id, principal=app.offer_amount, rate=app.offer_rate,
        term_months=term, disbursed_on=disbursed_on, maturity_on=_add_months(disbursed_on, term),
        first_loan=not earlier, pool_candidate=app.product.pool_participation,
        outstanding=app.offer_amount, status=LoanStatus.ACTIVE,
    )  # fmt: skip
    db.session.add(loan)
    applications.move(
        app, ApplicationStatus.DISBURSED, actor, now, {"disbursed_on": disbursed_on.isoformat()}
    )
    db.session.flush()
    if loan.pool_candidate:
        # The pool's own checks decide; an uncovered loan stands as it is.
        pool.reserve(actor, loan)
    return loan


def _event(
    actor: User, loan: Loan, kind: LoanEventKind, on: dt.date, **values: object
) -> LoanEvent:
    _require_bank(actor, loan.bank_org_id)
    if loan.status is not LoanStatus.ACTIVE and kind is not LoanEventKind.RECOVERY:
        raise AccountError(_l("This loan is no longer active."))
    if on < loan.disbursed_on:
        raise AccountError(_l("The date is before the disbursement."), field="occurred_on")
    event = LoanEvent(loan=loan, kind=kind, occurred_on=on, actor_user_id=actor.id, **values)
    db.session.add(event)
    db.session.flush()
    audit.record(
        f"loan.{kind.value}", actor=actor, enterprise_id=loan.enterprise_id,
        object_type="loan", object_id=loan.id, details={k: str(v) for k, v in values.items()},
    )  # fmt: skip
    return event


def record_repayment(actor: User, loan: Loan, amount: Decimal, on: dt.date) -> None:
    """Principal repaid; the loan is repaid when nothing is outstanding."""
    if amount <= 0 or amount > loan.outstanding:
        raise AccountError(
            _l(
                "A repayment is more than 0 and at most the outstanding %(o)s CNY.",
                o=f"{loan.outstanding:,.2f}",
            ),
            field="amount",
        )  # fmt: skip
    _event(actor, loan, LoanEventKind.REPAYMENT, on, amount=amount)
    loan.outstanding -= amount
    if loan.outstanding == 0:
        loan.status = LoanStatus.REPAID
    db.session.flush()
    if loan.status is LoanStatus.REPAID:
        pool.release(actor, loan)


def record_overdue(actor: User, loan: Loan, on: dt.date, days_overdue: int) -> None:
    if days_overdue <= 0:
        raise AccountError(_l("Days overdue must be positive."), field="days_overdue")
    _event(actor, loan, LoanEventKind.OVERDUE, on, days_overdue=days_overdue)


def record_default(actor: User, loan: Loan, on: dt.date) -> None:
    _event(actor, loan, LoanEventKind.DEFAULT, on, amount=loan.outstanding or None)
    loan.status = LoanStatus.DEFAULTED
    db.session.flush()


def record_recovery(actor: User, loan: Loan, amount: Decimal, on: dt.date) -> None:
    if loan.status is not LoanStatus.DEFAULTED:
        raise AccountError(_l("Recoveries are recorded on defaulted loans."))
    if amount <= 0:
        raise AccountError(_l("The amount must be positive."), field="amount")
    event = _event(actor, loan, LoanEventKind.RECOVERY, on, amount=amount)
    pool.record_recovery(actor, loan, amount, event.id)  # the pool's pro-rata share


def has_active_loan(bank_org_id: int, enterprise_id: int) -> bool:
    return authorization._has_active_loan(bank_org_id, enterprise_id)


def for_bank(actor: User) -> list[Loan]:
    """Every loan of the actor's bank, newest first."""
    return list(db.session.scalars(_bank_loans(actor)))


def page_for_bank(
    actor: User, page: int, per_page: int = paging.PER_PAGE, clamp: bool = True
) -> paging.Page[Loan]:
    """A page of :func:`for_bank`, read in SQL, with the bank's number of loans (past the
    end: :func:`paging.page_of`)."""
    return paging.page_of(_bank_loans(actor), page, per_page, clamp)


def _bank_loans(actor: User) -> sa.Select[Loan]:
    return (
        sa.select(Loan)
        .options(selectinload(Loan.enterprise))
        .where(Loan.bank_org_id == actor.organization_id)
        .order_by(Loan.disbursed_on.desc(), Loan.id.desc())
    )


def outcome_labels() -> pd.DataFrame:
    """uscc, disbursed_on, defaulted (0/1) for every loan: labels for retraining."""
    rows = db.session.execute(
        sa.select(Enterprise.uscc, Loan.disbursed_on, Loan.status).join(
            Enterprise, Enterprise.id == Loan.enterprise_id
        )
    ).all()
    return pd.DataFrame(
        [(u, d, int(s is LoanStatus.DEFAULTED)) for u, d, s in rows],
        columns=["uscc", "disbursed_on", "defaulted"],
    )
