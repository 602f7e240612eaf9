"""Loan applications: the state machine, who may move it, and the bank's deadline.

draft → submitted → under_review → offered | rejected; offered → accepted | declined;
any open state → withdrawn (by the enterprise). Each transition is checked here — an
illegal one raises :class:`IllegalTransition` and changes nothing — and recorded as an
:class:`ApplicationEvent` and in the audit trail. Disbursement arrives with loans.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import selectinload

from app.services import audit, authorization, notifications, offers, paging, workdays
from app.services.accounts import AccountError, PermissionRefused
from app.services.authorization import Action
from models import (
    OPEN_STATUSES,
    ApplicationEvent,
    ApplicationStatus,
    AuthorizationKind,
    Enterprise,
    LoanApplication,
    LoanProduct,
    OrgKind,
    ProductStatus,
    Role,
    User,
    db,
)
from models.authorization import SCOPES
from models.base import utcnow

S = ApplicationStatus
# (from, to) → who may make that move.
TRANSITIONS: dict[tuple[ApplicationStatus, ApplicationStatus], OrgKind] = {
    (S.DRAFT, S.SUBMITTED): OrgKind.ENTERPRISE,
    (S.SUBMITTED, S.UNDER_REVIEW): OrgKind.BANK,
    (S.SUBMITTED, S.OFFERED): OrgKind.BANK,
    (S.SUBMITTED, S.REJECTED): OrgKind.BANK,
    (S.UNDER_REVIEW, S.OFFERED): OrgKind.BANK,
    (S.UNDER_REVIEW, S.REJECTED): OrgKind.BANK,
    (S.OFFERED, S.ACCEPTED): OrgKind.ENTERPRISE,
    (S.OFFERED, S.DECLINED): OrgKind.ENTERPRISE,
    (S.ACCEPTED, S.DISBURSED): OrgKind.BANK,  # through loans.disburse, which makes the Loan
    **{
        (s, S.WITHDRAWN): OrgKind.ENTERPRISE
        for s in (S.DRAFT, S.SUBMITTED, S.UNDER_REVIEW, S.OFFERED)
    },
    # Past the bank's deadline, with the enterprise's consent (see :func:`route`).
    (S.SUBMITTED, S.ROUTED): OrgKind.ENTERPRISE,
    (S.UNDER_REVIEW, S.ROUTED): OrgKind.ENTERPRISE,
}

REJECTION_CODES = {
    "low_grade": _l("Credit grade below the product's requirement"),
    "insufficient_sales_history": _l("Not enough sales history"),
    "public_credit_record": _l("Public-credit record"),
    "missing_data": _l("Data missing: authorize more sources"),
    "policy": _l("Bank policy"),
    "other": _l("Other"),
}
STATUS_LABELS = {
    S.DRAFT: _l("Draft"),
    S.SUBMITTED: _l("Submitted"),
    S.UNDER_REVIEW: _l("Under review"),
    S.OFFERED: _l("Offer made"),
    S.REJECTED: _l("Rejected"),
    S.ACCEPTED: _l("Offer accepted"),
    S.DECLINED: _l("Offer declined"),
    S.DISBURSED: _l("Disbursed"),
    S.WITHDRAWN: _l("Withdrawn"),
    S.ROUTED: _l("Sent on to another bank"),
}
SHARING_DAYS = 180
# List pages show each application's product and bank: load them with the list, not per row.
_LIST_LOADS = selectinload(LoanApplication.product).selectinload(LoanProduct.bank)


class IllegalTransition(AccountError):
    pass


def move(
    app: LoanApplication,
    to: ApplicationStatus,
    actor: User,
    now: dt.datetime,
    details: dict[str, Any] | None = None,
    *,
    automatic: bool = False,
) -> None:
    """Make one transition, record it, audit it, notify both sides (the acting person
    excepted, unless the platform acted for them: ``automatic``)."""
    side = TRANSITIONS.get((app.status, to))
    if side is None:
        raise IllegalTransition(
            _l("An application that is %(now)s cannot become %(to)s.",
               now=STATUS_LABELS[app.status], to=STATUS_LABELS[to])
        )  # fmt: skip
    own = (
        actor.organization_id == app.enterprise.organization_id
        if side is OrgKind.ENTERPRISE
        else actor.organization_id == app.bank_org_id
    )
    if actor.org_kind is not side or not own or actor.role is Role.VIEWER:
        raise PermissionRefused(_l("You may not make this change to this application."))
    event = ApplicationEvent(
        application=app, from_status=app.status.value, to_status=to.value,
        actor_user_id=actor.id, at=now, details=details or {},
    )  # fmt: skip
    db.session.add(event)
    app.status = to
    db.session.flush()
    audit.record(
        f"application.{to.value}", actor=actor, enterprise_id=app.enterprise_id,
        object_type="application", object_id=app.id, details=details or {}, now=now,
    )  # fmt: skip
    notifications.application_changed(app, None if automatic else actor, now)
    # needs imports this module; the late import keeps the cycle out of module load.
    from app.services import needs

    needs.application_ended(app, now)


def _enterprise_of(actor: User) -> Enterprise:
    enterprise = db.session.scalar(
        sa.select(Enterprise).where(Enterprise.organization_id == actor.organization_id)
    )
    if enterprise is None or actor.org_kind is not OrgKind.ENTERPRISE:
        raise PermissionRefused(_l("Only an enterprise applies for loans."))
    if actor.role is Role.VIEWER:
        raise PermissionRefused(_l("Viewers may not apply for loans."))
    return enterprise


def create(
    actor: User, product: LoanProduct, amount: Decimal, term_months: int, purpose: str,
    now: dt.datetime | None = None,
) -> LoanApplication:  # fmt: skip
    """A draft. Raises :class:`AccountError` naming the field when the amount or term is
    outside the product's ranges, or an application to this product is already open."""
    now = now or utcnow()
    enterprise = _enterprise_of(actor)
    if product.status is not ProductStatus.PUBLISHED:
        raise AccountError(_l("This product is not open for applications."))
    if not product.amount_min <= amount <= product.amount_max:
        raise AccountError(
            _l("The amount must be between %(lo)s and %(hi)s CNY.",
               lo=f"{product.amount_min:,.2f}", hi=f"{product.amount_max:,.2f}"),
            field="amount",
        )  # fmt: skip
    if not product.term_min_months <= term_months <= product.term_max_months:
        raise AccountError(
            _l("The term must be between %(lo)d and %(hi)d months.",
               lo=product.term_min_months, hi=product.term_max_months),
            field="term_months",
        )  # fmt: skip
    if not purpose.strip():
        raise AccountError(_l("Say what the loan is for."), field="purpose")
    open_one = db.session.scalar(
        sa.select(LoanApplication.id).where(
            LoanApplication.enterprise_id == enterprise.id,
            LoanApplication.product_id == product.id,
            LoanApplication.status.in_(OPEN_STATUSES),
        )
    )
    if open_one is not None:
        raise AccountError(
            _l("You already have an open application for this product."), field="product"
        )
    app = LoanApplication(
        enterprise=enterprise, product=product, bank_org_id=product.bank_org_id,
        amount=amount, term_months=term_months, purpose=purpose.strip()[:500],
        status=S.DRAFT, created_at=now,
    )  # fmt: skip
    db.session.add(app)
    db.session.add(
        ApplicationEvent(application=app, to_status=S.DRAFT.value, actor_user_id=actor.id, at=now)
    )
    db.session.flush()
    return app


def submit(
    actor: User,
    app: LoanApplication,
    *,
    confirm_sharing: bool,
    route_on_overdue: bool = False,
    now: dt.datetime | None = None,
) -> None:
    """Send the application to the bank. The bank must be able to see the profile: an
    existing live sharing grant is used, otherwise one is created — only with the
    enterprise's explicit confirmation (``confirm_sharing``). ``route_on_overdue`` is the
    enterprise's consent to have it sent on to the next matching bank (which then sees the
    profile) should this bank miss its deadline."""
    now = now or utcnow()
    if route_on_overdue:
        app.route_on_overdue, app.route_consent_user_id = True, actor.id
    bank = app.product.bank
    decision = authorization.decide(bank, Action.VIEW_PROFILE, app.enterprise, now=now)
    if decision.allowed:
        app.sharing_authorization_id = decision.authorization_id
    elif not confirm_sharing:
        raise AccountError(
            _l("Confirm that %(bank)s may see your credit profile to review this application.",
               bank=bank.name),
            field="confirm_sharing",
        )  # fmt: skip
    else:
        scopes = tuple(app.product.split(app.product.required_scopes)) or SCOPES
        grant = authorization.grant(
            actor, app.enterprise,
            authorization.GrantRequest(
                kind=AuthorizationKind.SHARING, scopes=scopes, grantee_org_id=bank.id,
                valid_days=SHARING_DAYS, data_life_days=SHARING_DAYS,
            ),
            now=now,
        )  # fmt: skip
        app.sharing_authorization_id = grant.id
    app.submitted_at = now
    app.respond_by = workdays.deadline_at(now, app.product.response_days)
    move(app, S.SUBMITTED, actor, now, {"respond_by": app.respond_by.isoformat()})


def start_review(actor: User, app: LoanApplication, now: dt.datetime | None = None) -> None:
    move(app, S.UNDER_REVIEW, actor, now or utcnow())


def make_offer(
    actor: User, app: LoanApplication, *, amount: Decimal, rate: Decimal, term_months: int,
    fee: Decimal, valid_until: dt.date, now: dt.datetime | None = None,
) -> None:  # fmt: skip
    """An offer within the product's ranges, valid until a date after today."""
    now = now or utcnow()
    product = app.product
    if not product.amount_min <= amount <= product.amount_max:
        raise AccountError(_l("The amount is outside the product's range."), field="amount")
    if not product.rate_min <= rate <= product.rate_max:
        raise AccountError(_l("The rate is outside the product's range."), field="rate")
    if not product.term_min_months <= term_months <= product.term_max_months:
        raise AccountError(_l("The term is outside the product's range."), field="term_months")
    if fee < 0:
        raise AccountError(_l("The fee cannot be negative."), field="fee")
    if valid_until <= workdays.local_date(now):
        raise AccountError(_l("An offer must be valid beyond today."), field="valid_until")
    app.offer_amount, app.offer_rate, app.offer_term_months = amount, rate, term_months
    app.offer_fee, app.offer_valid_until = fee, valid_until
    app.decided_at = now
    move(
        app,
        S.OFFERED,
        actor,
        now,
        {"amount": str(amount), "rate": str(rate), "term_months": term_months},
    )


def reject(
    actor: User,
    app: LoanApplication,
    codes: list[str],
    text: str = "",
    now: dt.datetime | None = None,
) -> None:
    """A rejection needs at least one coded reason; "other" needs words."""
    now = now or utcnow()
    unknown = [c for c in codes if c not in REJECTION_CODES]
    if not codes or unknown:
        raise AccountError(_l("Choose at least one reason."), field="codes")
    if "other" in codes and not text.strip():
        raise AccountError(_l("Explain the other reason."), field="text")
    app.rejection_codes, app.rejection_text = list(codes), text.strip()[:1000] or None
    app.decided_at = now
    move(app, S.REJECTED, actor, now, {"codes": list(codes)})


def accept(actor: User, app: LoanApplication, now: dt.datetime | None = None) -> None:
    now = now or utcnow()
    if app.offer_valid_until is not None and app.offer_valid_until < workdays.local_date(now):
        raise IllegalTransition(_l("This offer has expired."))
    move(app, S.ACCEPTED, actor, now)


def decline(actor: User, app: LoanApplication, now: dt.datetime | None = None) -> None:
    move(app, S.DECLINED, actor, now or utcnow())


def withdraw(actor: User, app: LoanApplication, now: dt.datetime | None = None) -> None:
    move(app, S.WITHDRAWN, actor, now or utcnow())


@dataclass(frozen=True)
class OfferSummary:
    """An offer on the same terms as any other: every cost in CNY and as an APR."""

    application: LoanApplication
    amount: Decimal
    rate: Decimal
    term_months: int
    fee: Decimal
    first_payment: Decimal
    interest: Decimal
    total: Decimal  # everything repaid, principal and interest
    apr: Decimal  # fees included
    cost_per_10k: Decimal  # interest + fee for every 10,000 CNY borrowed


def offer_summary(app: LoanApplication) -> OfferSummary | None:
    if app.offer_amount is None or app.offer_rate is None or not app.offer_term_months:
        return None
    plan = offers.schedule(
        app.offer_amount, app.offer_rate, app.offer_term_months, app.product.repayment_method.value
    )
    payments = [i.payment for i in plan]
    fee = app.offer_fee or Decimal(0)
    interest = sum((i.interest for i in plan), Decimal(0))
    return OfferSummary(
        application=app, amount=app.offer_amount, rate=app.offer_rate,
        term_months=app.offer_term_months, fee=fee, first_payment=payments[0],
        interest=interest, total=sum(payments, Decimal(0)),
        apr=offers.apr(app.offer_amount, fee, payments),
        cost_per_10k=((interest + fee) * 10_000 / app.offer_amount).quantize(Decimal("0.01")),
    )  # fmt: skip


def open_offers(actor: User, now: dt.datetime | None = None) -> list[OfferSummary]:
    """The enterprise's offers it can still accept, cheapest (by APR) first."""
    now = now or utcnow()
    summaries = [
        summary
        for app in for_enterprise(actor)
        if app.status is S.OFFERED
        and (app.offer_valid_until is None or app.offer_valid_until >= workdays.local_date(now))
        and (summary := offer_summary(app)) is not None
    ]
    return sorted(summaries, key=lambda o: (o.apr, o.application.id))


def is_overdue(app: LoanApplication, now: dt.datetime | None = None) -> bool:
    """Still unanswered past the product's response deadline (flagged to the office)."""
    now = now or utcnow()
    return (
        app.status in (S.SUBMITTED, S.UNDER_REVIEW)
        and app.respond_by is not None
        and app.respond_by < now
    )


def working_days_late(app: LoanApplication, now: dt.datetime | None = None) -> int:
    """Whole Chinese working days since the deadline's day (Beijing dates); 0 on that day."""
    if app.respond_by is None:
        return 0
    now = now or utcnow()
    return max(
        0,
        workdays.working_days_between(
            workdays.local_date(app.respond_by),
            workdays.local_date(now),
        ),
    )


def for_enterprise(actor: User) -> list[LoanApplication]:
    enterprise = db.session.scalar(
        sa.select(Enterprise).where(Enterprise.organization_id == actor.organization_id)
    )
    if enterprise is None:
        return []
    return list(
        db.session.scalars(
            sa.select(LoanApplication)
            .options(_LIST_LOADS)
            .where(
                LoanApplication.enterprise_id == enterprise.id, LoanApplication.status != S.DRAFT
            )
            .order_by(LoanApplication.created_at.desc())
        )
    )


# Once the enterprise has accepted an offer the application is the bank's contract: the bank
# keeps it (to disburse, and as the record of the loan) whatever happens to the sharing grant.
CONTRACT_STATUSES = (S.ACCEPTED, S.DISBURSED)


def visible_to_bank(app: LoanApplication, bank_org_id: int, now: dt.datetime | None = None) -> bool:
    """May this bank see the application now? Addressed to it, sent (not a draft), and
    either a contract already or shared with the bank by a live grant (:func:`decide`)."""
    if app.bank_org_id != bank_org_id or app.status is S.DRAFT:
        return False
    if app.status in CONTRACT_STATUSES:
        return True
    bank = app.product.bank
    return authorization.decide(bank, Action.VIEW_PROFILE, app.enterprise, now=now).allowed


def for_bank(actor: User, now: dt.datetime | None = None) -> list[LoanApplication]:
    """Applications addressed to the actor's bank that it may see now (see
    :func:`visible_to_bank`; drafts are the enterprise's own): those awaiting the bank's
    answer first, soonest deadline first; then the others, newest first."""
    return list(db.session.scalars(_bank_applications(actor, None, now)))


def page_for_bank(
    actor: User,
    page: int,
    status: S | None = None,
    per_page: int = paging.PER_PAGE,
    clamp: bool = True,
    now: dt.datetime | None = None,
) -> paging.Page[LoanApplication]:
    """A page of :func:`for_bank` (those in ``status`` only, if given), read in SQL, with
    how many there are in all (past the end: :func:`paging.page_of`)."""
    return paging.page_of(_bank_applications(actor, status, now), page, per_page, clamp)


AWAITING_BANK = (S.SUBMITTED, S.UNDER_REVIEW)  # the bank's answer is due by ``respond_by``


def _bank_applications(
    actor: User, status: S | None, now: dt.datetime | None
) -> sa.Select[LoanApplication]:
    if actor.org_kind is not OrgKind.BANK:
        raise PermissionRefused(_l("Only banks receive applications."))
    contract = LoanApplication.status.in_(CONTRACT_STATUSES)
    # The bank's live sharing grants as a subquery (a province's bank may have more
    # enterprises sharing with it than a statement may carry parameters).
    visible = (
        sa.or_(contract, LoanApplication.enterprise_id.in_(authorization.shared_with_bank_select()))
        if authorization.is_active_bank(actor.organization)
        else contract
    )
    awaiting = LoanApplication.status.in_(AWAITING_BANK)
    deadline = sa.case((awaiting, LoanApplication.respond_by))
    query = (
        sa.select(LoanApplication)
        .options(_LIST_LOADS, selectinload(LoanApplication.enterprise))
        .where(
            LoanApplication.bank_org_id == actor.organization_id,
            LoanApplication.status != S.DRAFT,
            visible,
        )
        .order_by(
            sa.case((awaiting, 0), else_=1),
            deadline.is_(None),
            deadline,
            LoanApplication.id.desc(),
        )
        .params(bank_id=actor.organization_id, now=now or utcnow())
    )
    return query if status is None else query.where(LoanApplication.status == status)


def overdue_query(now: dt.datetime) -> sa.Select[Any]:
    """For the office: applications the bank has not answered within its deadline, the
    longest overdue first, each with its product, bank and enterprise."""
    return (
        sa.select(LoanApplication)
        .options(_LIST_LOADS, selectinload(LoanApplication.enterprise))
        .where(
            LoanApplication.status.in_((S.SUBMITTED, S.UNDER_REVIEW)),
            LoanApplication.respond_by < now,
        )
        .order_by(LoanApplication.respond_by, LoanApplication.id)
    )


def overdue(now: dt.datetime | None = None) -> list[LoanApplication]:
    return list(db.session.scalars(overdue_query(now or utcnow())))


# Routing past the deadline ------------------------------------------------------------


def _banks_tried(app: LoanApplication) -> set[int]:
    """Banks this request has already been with: the routing chain and, for a need, every
    bank that took it."""
    banks = {app.bank_org_id}
    current: LoanApplication | None = app
    while current is not None and current.routed_from_id is not None:
        current = db.session.get(LoanApplication, current.routed_from_id)
        if current is not None:
            banks.add(current.bank_org_id)
    if app.need_id is not None:
        banks.update(
            db.session.scalars(
                sa.select(LoanApplication.bank_org_id).where(LoanApplication.need_id == app.need_id)
            )
        )
    return banks


def next_product(app: LoanApplication, now: dt.datetime | None = None) -> LoanProduct | None:
    """The best-fitting product of a bank not yet tried that the enterprise qualifies for,
    lends the amount and term asked, and has no open application from it."""
    from app.services import matching, products  # products → matching → this module

    tried = _banks_tried(app)
    open_products = set(
        db.session.scalars(
            sa.select(LoanApplication.product_id).where(
                LoanApplication.enterprise_id == app.enterprise_id,
                LoanApplication.status.in_(OPEN_STATUSES),
            )
        )
    )
    candidates = [
        p
        for p in products.published(
            products.Filters(amount=app.amount, term_months=app.term_months)
        )
        if p.bank_org_id not in tried and p.id not in open_products
    ]
    for match in matching.explain(app.enterprise, candidates, now):
        if match.eligible:
            return match.product
    return None


def route(
    actor: User, app: LoanApplication, *, automatic: bool = False, now: dt.datetime | None = None
) -> LoanApplication | None:
    """Send an overdue application on to the next matching bank, for the enterprise.

    ``actor`` is the enterprise user asking now, or — ``automatic`` — the one who gave the
    standing consent when submitting. The new application is submitted at once with a
    sharing grant to the new bank (the consent covers it) and keeps the routing consent.
    Returns it, or ``None`` when no other bank fits (the application then stays where it is
    and the enterprise is told)."""
    now = now or utcnow()
    if not is_overdue(app, now):
        raise IllegalTransition(
            _l("An application is sent on only after the bank missed its deadline.")
        )
    if automatic and not app.route_on_overdue:
        raise PermissionRefused(_l("The enterprise did not agree to have it sent on."))
    product = next_product(app, now)
    if product is None:
        notifications.notify(
            [app.enterprise.organization_id], "application.no_route",
            notifications.application_params(app), application=app, now=now,
        )  # fmt: skip
        return None
    successor = create(actor, product, app.amount, app.term_months, app.purpose, now=now)
    successor.routed_from_id = app.id
    move(app, S.ROUTED, actor, now, {"to_product_id": product.id}, automatic=automatic)
    submit(actor, successor, confirm_sharing=True, route_on_overdue=app.route_on_overdue, now=now)
    if successor.route_on_overdue:
        successor.route_consent_user_id = app.route_consent_user_id or actor.id
    return successor


def check_deadlines(now: dt.datetime | None = None) -> dict[str, int]:
    """The periodic deadline check: tell the office, bank and enterprise once about every
    application past its deadline, and route those the enterprise agreed to route."""
    now = now or utcnow()
    told = routed = 0
    for app in overdue(now):
        if app.overdue_notified_at is None:
            notifications.notify(
                [app.enterprise.organization_id, app.bank_org_id, *notifications.office_org_ids()],
                "application.overdue", notifications.application_params(app),
                application=app, now=now,
            )  # fmt: skip
            app.overdue_notified_at = now
            told += 1
            if app.route_on_overdue and app.route_consent_user_id is not None:
                consenting = db.session.get(User, app.route_consent_user_id)
                if consenting is not None and consenting.is_active:
                    try:
                        if route(consenting, app, automatic=True, now=now) is not None:
                            routed += 1
                    except (AccountError, PermissionRefused):
                        continue
    db.session.flush()
    return {"overdue_told": told, "routed": routed}
