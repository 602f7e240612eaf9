"""Financing needs (融资需求) and banks taking them (抢单).

An enterprise posts what it wants — amount, term, purpose, the highest rate it accepts —
and, with its explicit consent, lets the banks on the platform see its credit profile while
the need is open. A bank sees the need only if that consent is live *and* one of its
published products fits: the enterprise passes every rule, the amount and term are in the
product's ranges and the product's lowest rate is within the enterprise's maximum.

The first bank to take it wins (a conditional update, safe under concurrency): the need
becomes an application to that bank, under review, with the product's response deadline.
If that application ends without a loan (rejected, declined, withdrawn, routed on), the need
opens again for the other banks; a bank that already had it does not see it again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cache

import numpy as np
import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import selectinload

from app.services import (
    applications,
    audit,
    authorization,
    matching,
    notifications,
    products,
    workdays,
)
from app.services.accounts import AccountError, PermissionRefused
from app.services.authorization import Action
from app.services.matching_engine import eligibility
from models import (
    OPEN_STATUSES,
    ApplicationEvent,
    ApplicationStatus,
    AuthorizationKind,
    Enterprise,
    FinancingNeed,
    LoanApplication,
    LoanProduct,
    NeedStatus,
    Organization,
    OrgKind,
    ProductStatus,
    Role,
    User,
    db,
)
from models.authorization import SCOPES
from models.base import utcnow

DEFAULT_DAYS = 30
MAX_DAYS = 90
# Loans above four times the one-year LPR (about 24% a year) are not protected by the courts;
# a maximum rate beyond it is a typing error rather than a wish.
MAX_RATE = Decimal("24")
MAX_AMOUNT = Decimal("100000000")  # 10,000 × 10,000 CNY
S = ApplicationStatus
# The application a need became ended without a loan: the need opens again.
_REOPEN_ON = frozenset({S.REJECTED, S.DECLINED, S.WITHDRAWN, S.ROUTED})


@dataclass(frozen=True)
class NeedTerms:
    amount: Decimal  # CNY
    term_months: int
    purpose: str
    max_rate: Decimal  # annual, percent
    valid_days: int = DEFAULT_DAYS


def parse_terms(
    amount_wan: str, term_months: str, purpose: str, max_rate: str, valid_days: str
) -> NeedTerms:
    """The form's strings → terms; raises :class:`AccountError` naming the field."""

    def number(text: str, name: str, message: object) -> Decimal:
        try:
            value = Decimal(text.strip())
        except InvalidOperation:
            raise AccountError(message, field=name) from None
        if not value.is_finite():
            raise AccountError(message, field=name)
        return value

    amount = number(amount_wan, "amount", _l("Enter the amount in 10,000 CNY, e.g. 50.")) * 10_000
    if not term_months.strip().isdigit():
        raise AccountError(_l("Enter the term in months."), field="term_months")
    rate = number(max_rate, "max_rate", _l("Enter the highest annual rate you accept, e.g. 4.5."))
    days = valid_days.strip() or str(DEFAULT_DAYS)
    if not days.isdigit():
        raise AccountError(
            _l("Enter for how many days banks may take the need."), field="valid_days"
        )
    return NeedTerms(amount, int(term_months), purpose, rate, int(days))


def validate(terms: NeedTerms) -> None:
    if not Decimal(0) < terms.amount <= MAX_AMOUNT:
        raise AccountError(
            _l("The amount must be more than 0 and at most %(n)s × 10,000 CNY.",
               n=f"{MAX_AMOUNT / 10_000:,.0f}"),
            field="amount",
        )  # fmt: skip
    if terms.amount != terms.amount.quantize(Decimal("0.01")):
        raise AccountError(_l("The amount has more than two decimals."), field="amount")
    if not 1 <= terms.term_months <= 360:
        raise AccountError(_l("The term must be between 1 and 360 months."), field="term_months")
    if not terms.purpose.strip():
        raise AccountError(_l("Say what the loan is for."), field="purpose")
    if not Decimal(0) < terms.max_rate <= MAX_RATE:
        raise AccountError(
            _l("The highest rate must be more than 0 and at most %(n)s a year.",
               n=f"{MAX_RATE}%"),
            field="max_rate",
        )  # fmt: skip
    if not 1 <= terms.valid_days <= MAX_DAYS:
        raise AccountError(
            _l("A need stays open between 1 and %(n)d days.", n=MAX_DAYS), field="valid_days"
        )


def _enterprise_of(actor: User) -> Enterprise:
    enterprise = db.session.scalar(
        sa.select(Enterprise).where(Enterprise.organization_id == actor.organization_id)
    )
    if enterprise is None or actor.org_kind is not OrgKind.ENTERPRISE:
        raise PermissionRefused(_l("Only an enterprise posts financing needs."))
    if actor.role is Role.VIEWER:
        raise PermissionRefused(_l("Viewers may not post financing needs."))
    return enterprise


def _fits(product: LoanProduct, need: FinancingNeed) -> bool:
    """The product could lend what the need asks for, at a rate the enterprise accepts."""
    return (
        product.amount_min <= need.amount <= product.amount_max
        and product.term_min_months <= need.term_months <= product.term_max_months
        and product.rate_min <= need.max_rate
    )


def matching_products(need: FinancingNeed, bank_org_id: int | None = None) -> list[LoanProduct]:
    """Published products (of one bank, or all) that fit the need and the enterprise passes."""
    candidates = [
        p for p in products.published(products.Filters(bank_org_id=bank_org_id)) if _fits(p, need)
    ]
    if not candidates:
        return []
    ok = eligibility(matching.facts_of([need.enterprise]), matching.rules_of(candidates))[0]
    return [p for p, passed in zip(candidates, ok, strict=True) if passed]


def _live_all_banks_grant(
    enterprise: Enterprise, until: dt.datetime, now: dt.datetime
) -> int | None:
    """A live grant sharing the profile with every bank, lasting at least ``until``."""
    for grant in authorization.ledger(enterprise):
        if (
            grant.kind is AuthorizationKind.SHARING
            and grant.all_banks
            and grant.revoked_at is None
            and grant.paused_at is None
            and grant.valid_from <= now
            and grant.valid_until >= until
        ):
            return grant.id
    return None


def post(
    actor: User, terms: NeedTerms, *, confirm_sharing: bool, now: dt.datetime | None = None
) -> FinancingNeed:
    """Publish a need. Without a live all-banks sharing grant covering its lifetime, one is
    created — only with the enterprise's explicit confirmation (``confirm_sharing``)."""
    now = now or utcnow()
    enterprise = _enterprise_of(actor)
    validate(terms)
    duplicate = db.session.scalar(
        sa.select(FinancingNeed.id).where(
            FinancingNeed.enterprise_id == enterprise.id,
            FinancingNeed.status.in_((NeedStatus.OPEN, NeedStatus.TAKEN)),
            FinancingNeed.amount == terms.amount,
            FinancingNeed.term_months == terms.term_months,
        )
    )
    if duplicate is not None:
        raise AccountError(
            _l("You already have an open need for this amount and term."), field="amount"
        )
    expires = now + dt.timedelta(days=terms.valid_days)
    grant_id = _live_all_banks_grant(enterprise, expires, now)
    owns_grant = False
    if grant_id is None:
        if not confirm_sharing:
            raise AccountError(
                _l("Confirm that banks may see your credit profile while the need is open."),
                field="confirm_sharing",
            )
        grant = authorization.grant(
            actor, enterprise,
            authorization.GrantRequest(
                kind=AuthorizationKind.SHARING, scopes=SCOPES, all_banks=True,
                valid_days=terms.valid_days, data_life_days=terms.valid_days,
            ),
            now=now,
        )  # fmt: skip
        grant_id, owns_grant = grant.id, True
    need = FinancingNeed(
        enterprise=enterprise, amount=terms.amount, term_months=terms.term_months,
        purpose=terms.purpose.strip()[:500], max_rate=terms.max_rate, status=NeedStatus.OPEN,
        sharing_authorization_id=grant_id, owns_sharing_grant=owns_grant,
        created_by_user_id=actor.id, created_at=now,
        expires_at=expires,
    )  # fmt: skip
    db.session.add(need)
    db.session.flush()
    audit.record(
        "need.posted", actor=actor, enterprise_id=enterprise.id, object_type="need",
        object_id=need.id, details={"amount": str(need.amount), "term_months": need.term_months},
        now=now,
    )  # fmt: skip
    _announce(need, now)
    return need


def _announce(need: FinancingNeed, now: dt.datetime, exclude: Sequence[int] = ()) -> None:
    banks = {p.bank_org_id for p in matching_products(need)} - set(exclude)
    notifications.notify(banks, "need.posted", _params(need), need=need, now=now)


def _params(need: FinancingNeed, bank: Organization | None = None) -> dict[str, str]:
    return {
        "enterprise": need.enterprise.name,
        "amount": f"{need.amount / 10_000:,.0f}",
        "bank": bank.name if bank is not None else "",
    }


def is_open(need: FinancingNeed, now: dt.datetime | None = None) -> bool:
    return need.status is NeedStatus.OPEN and need.expires_at > (now or utcnow())


def withdraw(actor: User, need: FinancingNeed, now: dt.datetime | None = None) -> None:
    """Close an open need. The sharing grant made for it is revoked unless an open
    application or another need still relies on it; a grant the enterprise had given before
    (reused by the need) is left alone — it revokes that one on its ledger."""
    now = now or utcnow()
    enterprise = _enterprise_of(actor)
    if need.enterprise_id != enterprise.id:
        raise PermissionRefused(_l("This is not your financing need."))
    if need.status is not NeedStatus.OPEN:
        raise AccountError(
            _l("Only an open need can be withdrawn; withdraw the application it became instead.")
        )
    need.status, need.closed_at = NeedStatus.WITHDRAWN, now
    grant = (
        db.session.get(authorization.Authorization, need.sharing_authorization_id)
        if need.sharing_authorization_id
        else None
    )
    in_use = db.session.scalar(
        sa.select(sa.func.count()).select_from(LoanApplication).where(
            LoanApplication.sharing_authorization_id == need.sharing_authorization_id,
            LoanApplication.status.in_(OPEN_STATUSES),
        )
    ) or 0  # fmt: skip
    other_needs = db.session.scalar(
        sa.select(sa.func.count()).select_from(FinancingNeed).where(
            FinancingNeed.sharing_authorization_id == need.sharing_authorization_id,
            FinancingNeed.id != need.id,
            FinancingNeed.status.in_((NeedStatus.OPEN, NeedStatus.TAKEN)),
        )
    ) or 0  # fmt: skip
    if (
        grant is not None
        and need.owns_sharing_grant
        and grant.revoked_at is None
        and not in_use
        and not other_needs
    ):
        authorization.revoke(actor, grant, now=now)
    audit.record(
        "need.withdrawn", actor=actor, enterprise_id=enterprise.id, object_type="need",
        object_id=need.id, now=now,
    )  # fmt: skip


def for_enterprise(actor: User) -> list[FinancingNeed]:
    enterprise = _enterprise_of(actor)
    return list(
        db.session.scalars(
            sa.select(FinancingNeed)
            .where(FinancingNeed.enterprise_id == enterprise.id)
            .order_by(FinancingNeed.created_at.desc(), FinancingNeed.id.desc())
        )
    )


# The bank side -----------------------------------------------------------------------


@dataclass
class OpenNeed:
    need: FinancingNeed
    products: list[LoanProduct] = field(default_factory=list)  # the bank's fitting products


def _banks_already_on(need_ids: Sequence[int]) -> dict[int, set[int]]:
    seen: dict[int, set[int]] = {}
    rows = db.session.execute(
        sa.select(LoanApplication.need_id, LoanApplication.bank_org_id).where(
            LoanApplication.need_id.in_(need_ids)
        )
    )
    for need_id, bank_id in rows:
        if need_id is not None:
            seen.setdefault(need_id, set()).add(bank_id)
    return seen


def visible_to_bank(actor: User, now: dt.datetime | None = None) -> list[OpenNeed]:
    """Open needs this bank may take: shared with it, fitting one of its products, and not
    one it already had. Nobody else's need appears, not even in counts.

    The sharing grants and the bank's earlier applications are conditions of the one SELECT
    (no list of a province's enterprise ids travels as parameters: PostgreSQL takes at most
    65,535 per statement); the needs' enterprises are then matched with the vectorized
    engine, their collection scopes read a chunk of ids at a time."""
    now = now or utcnow()
    if actor.org_kind is not OrgKind.BANK:
        raise PermissionRefused(_l("Only banks take financing needs."))
    bank = actor.organization
    if not authorization.is_active_bank(bank):
        return []
    own = products.published(products.Filters(bank_org_id=bank.id))
    if not own:
        return []
    needs = list(db.session.scalars(_open_needs_select(), {"bank_id": bank.id, "now": now}))
    if not needs:
        return []
    enterprises = list({n.enterprise_id: n.enterprise for n in needs}.values())
    row = {e.id: i for i, e in enumerate(enterprises)}
    ok = eligibility(matching.facts_of(enterprises, now), matching.rules_of(own))
    result = []
    for need in needs:
        fitting = [
            own[j] for j in np.flatnonzero(ok[row[need.enterprise_id]]) if _fits(own[j], need)
        ]
        if fitting:
            result.append(OpenNeed(need, fitting))
    return result


@cache
def _open_needs_select() -> sa.Select[FinancingNeed]:
    """The open, unexpired needs of the enterprises that share with ``bank_id`` at ``now``,
    but those the bank already had an application for, oldest first, each with its
    enterprise (shown per row). Built once; binds ``bank_id`` and ``now``."""
    now: sa.BindParameter[dt.datetime] = sa.bindparam("now")
    had = sa.exists().where(
        LoanApplication.need_id == FinancingNeed.id,
        LoanApplication.bank_org_id == sa.bindparam("bank_id"),
    )
    return (
        sa.select(FinancingNeed)
        .options(selectinload(FinancingNeed.enterprise))
        .where(
            FinancingNeed.status == NeedStatus.OPEN,
            FinancingNeed.expires_at > now,
            FinancingNeed.enterprise_id.in_(authorization.shared_with_bank_select()),
            ~had,
        )
        .order_by(FinancingNeed.created_at, FinancingNeed.id)
    )


def take(
    actor: User, need: FinancingNeed, product: LoanProduct, now: dt.datetime | None = None
) -> LoanApplication:
    """The bank takes the need with one of its products: an application under review.

    Everything is checked again at this moment (the grant may have been revoked, the
    product retired); of two banks taking at once exactly one succeeds."""
    now = now or utcnow()
    if actor.org_kind is not OrgKind.BANK or actor.role is Role.VIEWER:
        raise PermissionRefused(_l("Only bank officers take financing needs."))
    bank = actor.organization
    if product.bank_org_id != bank.id or product.status is not ProductStatus.PUBLISHED:
        raise AccountError(_l("Choose one of your published products."), field="product")
    decision = authorization.decide(bank, Action.VIEW_PROFILE, need.enterprise, now=now)
    visible = decision.allowed and bank.id not in _banks_already_on([need.id]).get(need.id, set())
    if not visible:
        raise PermissionRefused(_l("This need is not open to your bank."))
    if not is_open(need, now):
        raise AccountError(_l("Another bank took this need first, or it has closed."))
    if product not in matching_products(need, bank.id):
        raise AccountError(
            _l("This product does not fit the need or the enterprise does not qualify for it."),
            field="product",
        )
    won = db.session.execute(
        sa.update(FinancingNeed)
        .where(FinancingNeed.id == need.id, FinancingNeed.status == NeedStatus.OPEN)
        .values(status=NeedStatus.TAKEN, taken_by_org_id=bank.id, taken_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(won, "rowcount", 0) != 1:
        raise AccountError(_l("Another bank took this need first, or it has closed."))
    db.session.refresh(need)
    app = LoanApplication(
        enterprise=need.enterprise, product=product, bank_org_id=bank.id, amount=need.amount,
        term_months=need.term_months, purpose=need.purpose, status=S.SUBMITTED, created_at=now,
        submitted_at=now, need_id=need.id, sharing_authorization_id=decision.authorization_id,
    )  # fmt: skip
    respond_by = workdays.deadline_at(now, product.response_days)
    app.respond_by = respond_by
    db.session.add(app)
    event = ApplicationEvent(
        application=app, to_status=S.SUBMITTED.value, actor_user_id=actor.id, at=now,
        details={"need_id": need.id, "respond_by": respond_by.isoformat()},
    )  # fmt: skip
    db.session.add(event)
    db.session.flush()
    audit.record(
        "need.taken", actor=actor, enterprise_id=need.enterprise_id, object_type="need",
        object_id=need.id, details={"application_id": app.id, "product_id": product.id}, now=now,
    )  # fmt: skip
    notifications.notify(
        [need.enterprise.organization_id], "need.taken", _params(need, bank),
        application=app, need=need, now=now,
    )  # fmt: skip
    applications.start_review(actor, app, now)
    return app


def application_ended(app: LoanApplication, now: dt.datetime) -> None:
    """Called on every transition of an application made from a need."""
    if app.need_id is None:
        return
    need = db.session.get(FinancingNeed, app.need_id)
    if need is None or need.status is not NeedStatus.TAKEN:
        return
    if app.status is S.DISBURSED:
        need.status, need.closed_at = NeedStatus.FULFILLED, now
    elif app.status in _REOPEN_ON:
        need.status, need.taken_by_org_id, need.taken_at = NeedStatus.OPEN, None, None
        db.session.flush()
        if need.expires_at > now:
            notifications.notify(
                [need.enterprise.organization_id], "need.reopened", _params(need), need=need,
                now=now,
            )  # fmt: skip
            _announce(need, now, exclude=tuple(_banks_already_on([need.id]).get(need.id, ())))
    db.session.flush()
