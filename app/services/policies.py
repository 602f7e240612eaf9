"""Financing support policies (融资支持政策): the office publishes them, enterprises claim.

Policy basis: 《加力帮扶中小微企业纾困解难若干措施》 (国务院促进中小企业发展工作领导小组办公室,
2022-05-09), item 一: local governments give 担保费 subsidies and 贷款贴息 to SMEs; and the
Xining plan (reference/000, item 十九) on 首贷 support through fiscal funds. The platform
holds the three kinds: interest subsidies, guarantee-fee subsidies, first-loan rewards.

Eligibility uses the very rules and engine of loan products (:mod:`app.services.matching`),
plus conditions on the loan attached. The benefit is computed here, in Decimal, with its
working; approvals are serialized per policy (row lock) and raise ``approved_total`` by a
conditional update, so the budget is never exceeded (a CHECK backs it up).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from app.services import audit, matching, notifications, products, workdays
from app.services.accounts import AccountError, PermissionRefused
from app.services.matching import RuleResult
from app.services.matching_engine import evaluate
from models import (
    Enterprise,
    OrgKind,
    PolicyApplication,
    PolicyApplicationStatus,
    PolicyKind,
    PolicyStatus,
    ProductType,
    Role,
    SupportPolicy,
    User,
    db,
)
from models.base import utcnow
from models.loan import Loan, LoanStatus

CNY = Decimal("0.01")
SHANGHAI = ZoneInfo("Asia/Shanghai")

KIND_LABELS = {
    PolicyKind.INTEREST_SUBSIDY: _l("Loan interest subsidy (贴息)"),
    PolicyKind.GUARANTEE_FEE_SUBSIDY: _l("Guarantee-fee subsidy (担保费补贴)"),
    PolicyKind.FIRST_LOAN_REWARD: _l("First-loan reward (首贷奖励)"),
}
STATUS_LABELS = {
    PolicyStatus.DRAFT: _l("Draft"),
    PolicyStatus.PUBLISHED: _l("Published"),
    PolicyStatus.CLOSED: _l("Closed"),
}
APPLICATION_LABELS = {
    PolicyApplicationStatus.SUBMITTED: _l("Submitted, awaiting the office"),
    PolicyApplicationStatus.APPROVED: _l("Approved"),
    PolicyApplicationStatus.REJECTED: _l("Rejected"),
}
CODE_FIELDS = (
    "public_credit_classes",
    "industries_allowed",
    "industries_excluded",
    "regions_allowed",
    "regions_excluded",
    "size_classes",
    "required_scopes",
    "product_types",
)


def _type_labels() -> dict[ProductType, Any]:
    from app.bank.forms import TYPE_LABELS

    return TYPE_LABELS


@dataclass
class PolicyTerms:
    """What the office's form sets. Rule fields are those of ``ProductTerms``."""

    name: str
    kind: PolicyKind
    period_start: dt.date
    period_end: dt.date
    total_budget: Decimal
    description: str = ""
    basis: str = ""
    subsidy_rate_pp: Decimal | None = None
    share_pct: Decimal | None = None
    fixed_amount: Decimal | None = None
    annual_cap: Decimal | None = None
    min_grade: str | None = None
    public_credit_classes: tuple[str, ...] = ()
    min_years_operating: Decimal | None = None
    min_annual_sales: Decimal | None = None
    min_tax_months: int | None = None
    min_social_months: int | None = None
    industries_allowed: tuple[str, ...] = ()
    industries_excluded: tuple[str, ...] = ()
    regions_allowed: tuple[str, ...] = ()
    regions_excluded: tuple[str, ...] = ()
    size_classes: tuple[str, ...] = ()
    required_scopes: tuple[str, ...] = ()
    first_loan_only: bool = False
    product_types: tuple[str, ...] = ()


def validate(terms: PolicyTerms) -> None:
    """Raise :class:`AccountError` naming the first field that is wrong."""

    def fail(name: str, message: object) -> None:
        raise AccountError(message, field=name)

    if not terms.name.strip():
        fail("name", _l("Enter a name."))
    if terms.period_end < terms.period_start:
        fail("period_end", _l("The period cannot end before it starts."))
    if terms.total_budget <= 0:
        fail("total_budget", _l("The budget must be positive."))
    if terms.annual_cap is not None and terms.annual_cap <= 0:
        fail("annual_cap", _l("A cap must be positive (leave it empty for none)."))
    if terms.subsidy_rate_pp is not None and not 0 < terms.subsidy_rate_pp <= 36:
        fail("subsidy_rate_pp", _l("Between 0 and 36 percentage points."))
    if terms.share_pct is not None and not 0 < terms.share_pct <= 100:
        fail("share_pct", _l("A share is above 0 and at most 100 percent."))
    if terms.fixed_amount is not None and terms.fixed_amount <= 0:
        fail("fixed_amount", _l("The amount must be positive."))
    if terms.kind is PolicyKind.INTEREST_SUBSIDY:
        if terms.subsidy_rate_pp is None and terms.share_pct is None:
            fail(
                "subsidy_rate_pp",
                _l("Set percentage points of the rate, a share of the interest, or both."),
            )
        if terms.fixed_amount is not None:
            fail("fixed_amount", _l("An interest subsidy has no fixed amount."))
    elif terms.kind is PolicyKind.GUARANTEE_FEE_SUBSIDY:
        if terms.share_pct is None:
            fail("share_pct", _l("Set the share of the guarantee fee that is paid back."))
        if terms.subsidy_rate_pp is not None:
            fail("subsidy_rate_pp", _l("Only interest subsidies are in percentage points."))
        if terms.fixed_amount is not None:
            fail("fixed_amount", _l("A guarantee-fee subsidy has no fixed amount."))
    else:
        if (terms.fixed_amount is None) == (terms.share_pct is None):
            fail(
                "fixed_amount",
                _l("Set either a fixed reward or a share of the principal, not both."),
            )
        if terms.subsidy_rate_pp is not None:
            fail("subsidy_rate_pp", _l("Only interest subsidies are in percentage points."))
        if not terms.first_loan_only:
            fail("first_loan_only", _l("A first-loan reward is for first loans only."))
    known = {t.value for t in ProductType}
    if any(t not in known for t in terms.product_types):
        fail("product_types", _l("Unknown loan type."))
    products.validate_rules(terms)


# Office: managing policies --------------------------------------------------------------


def _require_office(actor: User, *, admin: bool) -> None:
    if actor.org_kind is not OrgKind.OFFICE:
        raise PermissionRefused(_l("Only the financial office manages support policies."))
    if admin and actor.role is not Role.ADMIN:
        raise PermissionRefused(_l("Only the office's administrators manage support policies."))
    if not admin and actor.role is Role.VIEWER:
        raise PermissionRefused(_l("Viewers cannot decide applications."))


def _apply_terms(policy: SupportPolicy, terms: PolicyTerms) -> None:
    for f in fields(PolicyTerms):
        value = getattr(terms, f.name)
        if isinstance(value, tuple):
            value = ",".join(value)
        setattr(policy, f.name, value)


def terms_of(policy: SupportPolicy) -> PolicyTerms:
    values: dict[str, Any] = {}
    for f in fields(PolicyTerms):
        value = getattr(policy, f.name)
        values[f.name] = tuple(SupportPolicy.split(value)) if f.name in CODE_FIELDS else value
    return PolicyTerms(**values)


def _changes(policy: SupportPolicy) -> dict[str, str]:
    return {f.name: str(getattr(policy, f.name)) for f in fields(PolicyTerms)}


def create(actor: User, terms: PolicyTerms) -> SupportPolicy:
    _require_office(actor, admin=True)
    validate(terms)
    policy = SupportPolicy(
        office_org_id=actor.organization_id,
        created_by_user_id=actor.id,
        status=PolicyStatus.DRAFT,
        approved_total=Decimal(0),
    )
    _apply_terms(policy, terms)
    db.session.add(policy)
    db.session.flush()
    audit.record(
        "policy.create", actor=actor, object_type="policy", object_id=policy.id,
        details=_changes(policy),
    )  # fmt: skip
    return policy


def update(actor: User, policy: SupportPolicy, terms: PolicyTerms) -> None:
    """Only drafts change: a published policy's rules stay what enterprises applied under."""
    _require_office(actor, admin=True)
    if policy.status is not PolicyStatus.DRAFT:
        raise AccountError(
            _l("A published policy cannot be edited: close it and publish a new one.")
        )
    validate(terms)
    before = _changes(policy)
    _apply_terms(policy, terms)
    db.session.flush()
    after = _changes(policy)
    audit.record(
        "policy.update", actor=actor, object_type="policy", object_id=policy.id,
        details={k: [before[k], v] for k, v in after.items() if before[k] != v},
    )  # fmt: skip


def publish(actor: User, policy: SupportPolicy, now: dt.datetime | None = None) -> None:
    _require_office(actor, admin=True)
    if policy.status is not PolicyStatus.DRAFT:
        raise AccountError(_l("Only a draft can be published."))
    validate(terms_of(policy))
    policy.status = PolicyStatus.PUBLISHED
    policy.published_at = now or utcnow()
    db.session.flush()
    audit.record("policy.publish", actor=actor, object_type="policy", object_id=policy.id)


def close(actor: User, policy: SupportPolicy, now: dt.datetime | None = None) -> None:
    """No new applications; those already submitted are still decided."""
    _require_office(actor, admin=True)
    if policy.status is not PolicyStatus.PUBLISHED:
        raise AccountError(_l("Only a published policy can be closed."))
    policy.status = PolicyStatus.CLOSED
    policy.closed_at = now or utcnow()
    db.session.flush()
    audit.record("policy.close", actor=actor, object_type="policy", object_id=policy.id)


def all_policies(actor: User) -> list[SupportPolicy]:
    """Every policy, for the office (viewers too)."""
    if actor.org_kind is not OrgKind.OFFICE:
        raise PermissionRefused(_l("Only the financial office manages support policies."))
    return list(
        db.session.scalars(
            sa.select(SupportPolicy).order_by(SupportPolicy.status, SupportPolicy.id.desc())
        )
    )


def published() -> list[SupportPolicy]:
    return list(
        db.session.scalars(
            sa.select(SupportPolicy)
            .where(SupportPolicy.status == PolicyStatus.PUBLISHED)
            .order_by(SupportPolicy.kind, SupportPolicy.id)
        )
    )


# The benefit -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Benefit:
    """What a loan earns under a policy: before the cap, after it, and the working in
    numbers (language-neutral, shown beside a translated formula)."""

    raw: Decimal
    amount: Decimal
    working: str


def _fmt(value: Decimal, places: str = "0.01") -> str:
    return f"{value.quantize(Decimal(places)):,}"


def approved_this_year(
    policy: SupportPolicy, enterprise_id: int, year: int, exclude_id: int | None = None
) -> Decimal:
    """Approved amounts of this enterprise under this policy, decided in ``year`` (Beijing)."""
    rows = db.session.execute(
        sa.select(
            PolicyApplication.id, PolicyApplication.approved_amount, PolicyApplication.decided_at
        ).where(
            PolicyApplication.policy_id == policy.id,
            PolicyApplication.enterprise_id == enterprise_id,
            PolicyApplication.status == PolicyApplicationStatus.APPROVED,
        )
    )
    return sum(
        (
            Decimal(amount or 0)
            for app_id, amount, decided in rows
            if app_id != exclude_id
            and decided is not None
            and decided.astimezone(SHANGHAI).year == year
        ),
        Decimal(0),
    )


def raw_benefit(
    policy: SupportPolicy, loan: Loan, guarantee_fee_paid: Decimal | None = None
) -> tuple[Decimal, str]:
    """The benefit before the annual cap, rounded half-up to the fen, and its working.

    - interest subsidy: principal × r% × months/12, where months = the loan's term up to 12
      (one year's subsidy) and r = the smallest of the subsidy points, the loan rate × the
      interest share, and the loan rate itself;
    - guarantee-fee subsidy: fee paid × share%;
    - first-loan reward: the fixed amount, or principal × share%.
    """
    principal, rate = Decimal(loan.principal), Decimal(loan.rate)
    if policy.kind is PolicyKind.INTEREST_SUBSIDY:
        candidates: list[tuple[Decimal, str]] = []
        if policy.subsidy_rate_pp is not None:
            pp = Decimal(policy.subsidy_rate_pp)
            candidates.append((pp, _fmt(pp, "0.001")))
        if policy.share_pct is not None:
            share = Decimal(policy.share_pct)
            candidates.append(
                (rate * share / 100, f"{_fmt(rate, '0.001')} × {_fmt(share, '0.001')}%")
            )
        candidates.append((rate, _fmt(rate, "0.001")))
        r = min(c[0] for c in candidates)
        months = min(loan.term_months, 12)
        raw = (principal * r / 100 * months / 12).quantize(CNY, ROUND_HALF_UP)
        choice = f"r = min({', '.join(c[1] for c in candidates)}) = {_fmt(r, '0.0001')}"
        return (
            raw,
            f"{choice}; {_fmt(principal)} × {_fmt(r, '0.0001')}% × {months}/12 = {_fmt(raw)}",
        )
    if policy.kind is PolicyKind.GUARANTEE_FEE_SUBSIDY:
        if guarantee_fee_paid is None or guarantee_fee_paid <= 0:
            raise AccountError(
                _l("Enter the guarantee fee you paid for this loan."), field="guarantee_fee_paid"
            )
        share = Decimal(policy.share_pct or 0)
        raw = (guarantee_fee_paid * share / 100).quantize(CNY, ROUND_HALF_UP)
        return raw, f"{_fmt(guarantee_fee_paid)} × {_fmt(share, '0.001')}% = {_fmt(raw)}"
    if policy.fixed_amount is not None:
        raw = Decimal(policy.fixed_amount).quantize(CNY)
        return raw, f"{_fmt(raw)}"
    share = Decimal(policy.share_pct or 0)
    raw = (principal * share / 100).quantize(CNY, ROUND_HALF_UP)
    return raw, f"{_fmt(principal)} × {_fmt(share, '0.001')}% = {_fmt(raw)}"


def benefit(
    policy: SupportPolicy,
    loan: Loan,
    guarantee_fee_paid: Decimal | None = None,
    *,
    now: dt.datetime | None = None,
    exclude_id: int | None = None,
    used: Decimal | None = None,
) -> Benefit:
    """The claimable amount: the raw benefit within what the annual cap leaves this year
    (``used``: what was approved this year under the policy, if the caller has it)."""
    raw, working = raw_benefit(policy, loan, guarantee_fee_paid)
    if policy.annual_cap is None:
        return Benefit(raw, raw, working)
    if used is None:
        year = (now or utcnow()).astimezone(SHANGHAI).year
        used = approved_this_year(policy, loan.enterprise_id, year, exclude_id)
    cap = Decimal(policy.annual_cap)
    amount = max(min(raw, cap - used), Decimal(0)).quantize(CNY)
    return Benefit(
        raw, amount, f"{working}; min({_fmt(raw)}, {_fmt(cap)} − {_fmt(used)}) = {_fmt(amount)}"
    )


# Eligibility -----------------------------------------------------------------------------


def _enterprise_of(actor: User) -> Enterprise:
    if actor.org_kind is not OrgKind.ENTERPRISE:
        raise PermissionRefused(_l("Only enterprises claim support."))
    enterprise = db.session.scalar(
        sa.select(Enterprise).where(Enterprise.organization_id == actor.organization_id)
    )
    if enterprise is None:
        raise PermissionRefused(_l("Only enterprises claim support."))
    return enterprise


def loan_conditions(policy: SupportPolicy, loan: Loan) -> list[RuleResult]:
    """The policy's conditions on one loan, each explained."""
    labels = _type_labels()
    product_type = loan.product.product_type
    in_period = policy.period_start <= loan.disbursed_on <= policy.period_end
    results = [
        RuleResult(
            "loan_period",
            in_period,
            _l(
                "disbursed between %(start)s and %(end)s",
                start=policy.period_start.isoformat(),
                end=policy.period_end.isoformat(),
            ),
            loan.disbursed_on.isoformat(),
            None if in_period else _l("Only loans disbursed within the policy period count."),
        )
    ]
    if policy.first_loan_only:
        results.append(
            RuleResult(
                "first_loan",
                loan.first_loan,
                _l("a first loan (首贷): no earlier loan on the platform"),
                _l("first loan") if loan.first_loan else _l("not a first loan"),
                None if loan.first_loan else _l("Only an enterprise's first loan qualifies."),
            )
        )
    types = SupportPolicy.split(policy.product_types)
    if types:
        ok = product_type is not None and product_type.value in types
        results.append(
            RuleResult(
                "product_type",
                ok,
                _l(
                    "loan type %(t)s",
                    t=" / ".join(str(labels[ProductType(t)]) for t in types),
                ),
                labels[product_type] if product_type is not None else "",
                None if ok else _l("Loans of the types named qualify."),
            )
        )
    standing = loan.status is not LoanStatus.DEFAULTED
    results.append(
        RuleResult(
            "loan_standing",
            standing,
            _l("the loan is not in default"),
            _l("in default") if not standing else _l("in good standing"),
            None,
        )
    )
    return results


@dataclass
class LoanCheck:
    loan: Loan
    results: list[RuleResult]
    application: PolicyApplication | None
    benefit: Benefit | None  # None when a condition fails or it depends on the fee paid

    @property
    def eligible(self) -> bool:
        return all(r.passed for r in self.results)


@dataclass
class PolicyMatch:
    policy: SupportPolicy
    eligible: bool  # the enterprise's own rules
    results: list[RuleResult]
    loans: list[LoanCheck] = field(default_factory=list)

    @property
    def failed(self) -> list[RuleResult]:
        return [r for r in self.results if not r.passed]

    @property
    def claimable(self) -> list[LoanCheck]:
        return [c for c in self.loans if c.eligible and c.application is None]

    @property
    def qualifies(self) -> bool:
        return self.eligible and bool(self.claimable)


def _disbursed_loans(enterprise: Enterprise) -> list[Loan]:
    return list(
        db.session.scalars(
            sa.select(Loan)
            .options(selectinload(Loan.product))  # each loan's type, for every policy
            .where(Loan.enterprise_id == enterprise.id)
            .order_by(Loan.disbursed_on.desc(), Loan.id.desc())
        )
    )


def explain(
    enterprise: Enterprise,
    policies: Sequence[SupportPolicy],
    now: dt.datetime | None = None,
) -> list[PolicyMatch]:
    """Every policy for one enterprise: its rules explained (the products' engine), and each
    of its loans against the policy's loan conditions. Qualifying policies first."""
    if not policies:
        return []
    now = now or utcnow()
    facts = matching.facts_of([enterprise], now)
    passed = evaluate(facts, matching.rules_of(policies))[0]
    loans = _disbursed_loans(enterprise)
    own = list(
        db.session.scalars(
            sa.select(PolicyApplication).where(PolicyApplication.enterprise_id == enterprise.id)
        )
    )
    applied = {(a.policy_id, a.loan_id): a for a in own}
    # What each policy approved the enterprise this year (Beijing), from the same rows: no
    # query per policy and loan.
    year = now.astimezone(SHANGHAI).year
    used: dict[int, Decimal] = {}
    for a in own:
        if (
            a.status is PolicyApplicationStatus.APPROVED
            and a.decided_at is not None
            and a.decided_at.astimezone(SHANGHAI).year == year
        ):
            used[a.policy_id] = used.get(a.policy_id, Decimal(0)) + Decimal(a.approved_amount or 0)
    out = []
    for j, policy in enumerate(policies):
        results = matching.explain_rules(policy, facts, passed[j])
        match = PolicyMatch(policy, bool(passed[j].all()), results)
        for loan in loans:
            conditions = loan_conditions(policy, loan)
            ok = all(r.passed for r in conditions)
            gain = None
            if ok and policy.kind is not PolicyKind.GUARANTEE_FEE_SUBSIDY:
                gain = benefit(policy, loan, now=now, used=used.get(policy.id, Decimal(0)))
            match.loans.append(LoanCheck(loan, conditions, applied.get((policy.id, loan.id)), gain))
        out.append(match)
    out.sort(key=lambda m: (not m.qualifies, not m.eligible, m.policy.id))
    return out


def for_enterprise_view(actor: User, now: dt.datetime | None = None) -> list[PolicyMatch]:
    return explain(_enterprise_of(actor), published(), now)


# Applying --------------------------------------------------------------------------------


def get_policy(policy_id: int, *, published_only: bool = False) -> SupportPolicy | None:
    policy = db.session.get(SupportPolicy, policy_id)
    if policy is None or (published_only and policy.status is PolicyStatus.DRAFT):
        return None
    return policy


def own_loan(actor: User, loan_id: int) -> Loan:
    """The enterprise's own disbursed loan; another's is refused as if it did not exist."""
    enterprise = _enterprise_of(actor)
    loan = db.session.get(Loan, loan_id)
    if loan is None or loan.enterprise_id != enterprise.id:
        raise PermissionRefused(_l("Choose one of your own loans."))
    return loan


def apply(
    actor: User,
    policy: SupportPolicy,
    loan: Loan,
    guarantee_fee_paid: Decimal | None = None,
    now: dt.datetime | None = None,
) -> PolicyApplication:
    """Claim the policy's benefit for one of the enterprise's own disbursed loans.

    Raises :class:`PermissionRefused` for another's loan or a viewer, :class:`AccountError`
    for an unpublished policy, a rule or loan condition not met (naming it), a second claim
    for the same loan, or nothing left to claim under the cap."""
    now = now or utcnow()
    enterprise = _enterprise_of(actor)
    if actor.role is Role.VIEWER:
        raise PermissionRefused(_l("Viewers cannot apply."))
    if loan.enterprise_id != enterprise.id:
        raise PermissionRefused(_l("Choose one of your own loans."))
    if policy.status is not PolicyStatus.PUBLISHED:
        raise AccountError(_l("This policy is not open for applications."))
    existing = db.session.scalar(
        sa.select(PolicyApplication.id).where(
            PolicyApplication.policy_id == policy.id, PolicyApplication.loan_id == loan.id
        )
    )
    if existing is not None:
        raise AccountError(
            _l("You already applied under this policy for this loan."), field="loan_id"
        )
    match = explain(enterprise, [policy], now)[0]
    if not match.eligible:
        first = match.failed[0]
        raise AccountError(
            _l(
                "You do not meet this rule: %(r)s (yours: %(v)s).",
                r=first.requirement,
                v=first.value,
            )
        )
    failed = [r for r in loan_conditions(policy, loan) if not r.passed]
    if failed:
        raise AccountError(
            _l(
                "This loan does not meet: %(r)s (it is: %(v)s).",
                r=failed[0].requirement,
                v=failed[0].value,
            ),
            field="loan_id",
        )
    if policy.kind is not PolicyKind.GUARANTEE_FEE_SUBSIDY:
        guarantee_fee_paid = None
    gain = benefit(policy, loan, guarantee_fee_paid, now=now)
    if gain.amount <= 0:
        raise AccountError(_l("Nothing is left to claim: this year's cap is reached."))
    application = PolicyApplication(
        policy_id=policy.id, enterprise_id=enterprise.id, loan_id=loan.id,
        guarantee_fee_paid=guarantee_fee_paid, amount_claimed=gain.amount, working=gain.working,
        status=PolicyApplicationStatus.SUBMITTED, submitted_by_user_id=actor.id, submitted_at=now,
    )  # fmt: skip
    try:
        with db.session.begin_nested():
            db.session.add(application)
            db.session.flush()
    except IntegrityError as exc:  # a concurrent claim for the same loan won
        raise AccountError(
            _l("You already applied under this policy for this loan."), field="loan_id"
        ) from exc
    audit.record(
        "policy.applied", actor=actor, enterprise_id=enterprise.id,
        object_type="policy_application", object_id=application.id,
        details={"policy_id": policy.id, "loan_id": loan.id, "claimed": str(gain.amount)},
        now=now,
    )  # fmt: skip
    notifications.notify(
        notifications.office_org_ids(), "policy.submitted",
        {"enterprise": enterprise.name, "policy": policy.name, "amount": _fmt(gain.amount)},
        actor=actor, now=now,
    )  # fmt: skip
    return application


# Reviewing -------------------------------------------------------------------------------


def _lock_for_decision(application: PolicyApplication) -> SupportPolicy:
    """Lock the policy row (approvals of one policy run one at a time) and reload both."""
    policy = db.session.scalars(
        sa.select(SupportPolicy)
        .where(SupportPolicy.id == application.policy_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    db.session.scalars(
        sa.select(PolicyApplication)
        .where(PolicyApplication.id == application.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if application.status is not PolicyApplicationStatus.SUBMITTED:
        raise AccountError(_l("This application has already been decided."))
    return policy


def _params(application: PolicyApplication, **extra: Any) -> dict[str, Any]:
    return {"policy": application.policy.name, **extra}


def approve(
    actor: User,
    application: PolicyApplication,
    amount: Decimal | None = None,
    now: dt.datetime | None = None,
) -> None:
    """Approve ``amount`` (default: the amount claimed). It must be positive, at most the
    benefit computed now (the cap counts approvals since the claim) and at most what is left
    of the budget; the budget is raised by a conditional update, never past the total."""
    _require_office(actor, admin=False)
    now = now or utcnow()
    policy = _lock_for_decision(application)
    amount = (amount if amount is not None else Decimal(application.amount_claimed)).quantize(CNY)
    if amount <= 0:
        raise AccountError(_l("The approved amount must be positive."), field="amount")
    gain = benefit(
        policy, application.loan, application.guarantee_fee_paid, now=now, exclude_id=application.id
    )
    if amount > gain.amount:
        raise AccountError(
            _l("At most %(n)s CNY under the policy's terms.", n=_fmt(gain.amount)), field="amount"
        )
    result = db.session.execute(
        sa.update(SupportPolicy)
        .where(
            SupportPolicy.id == policy.id,
            SupportPolicy.approved_total + amount <= SupportPolicy.total_budget,
        )
        .values(approved_total=SupportPolicy.approved_total + amount)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        db.session.refresh(policy)
        raise AccountError(
            _l("Only %(n)s CNY of the budget is left.", n=_fmt(policy.remaining_budget)),
            field="amount",
        )
    db.session.refresh(policy)
    application.status = PolicyApplicationStatus.APPROVED
    application.approved_amount = amount
    application.reviewer_user_id = actor.id
    application.decided_at = now
    db.session.flush()
    audit.record(
        "policy.approved", actor=actor, enterprise_id=application.enterprise_id,
        object_type="policy_application", object_id=application.id,
        details={"policy_id": policy.id, "amount": str(amount)}, now=now,
    )  # fmt: skip
    notifications.notify(
        (application.enterprise.organization_id,), "policy.approved",
        _params(application, amount=_fmt(amount)), actor=actor, now=now,
    )  # fmt: skip


def reject(
    actor: User, application: PolicyApplication, reason: str, now: dt.datetime | None = None
) -> None:
    _require_office(actor, admin=False)
    reason = (reason or "").strip()
    if not reason:
        raise AccountError(_l("Give the enterprise a reason."), field="reason")
    if len(reason) > 1000:
        raise AccountError(_l("At most 1,000 characters."), field="reason")
    now = now or utcnow()
    _lock_for_decision(application)
    application.status = PolicyApplicationStatus.REJECTED
    application.reason = reason
    application.reviewer_user_id = actor.id
    application.decided_at = now
    db.session.flush()
    audit.record(
        "policy.rejected", actor=actor, enterprise_id=application.enterprise_id,
        object_type="policy_application", object_id=application.id,
        details={"policy_id": application.policy_id, "reason": reason}, now=now,
    )  # fmt: skip
    notifications.notify(
        (application.enterprise.organization_id,), "policy.rejected",
        _params(application, reason=reason), actor=actor, now=now,
    )  # fmt: skip


# Lists -------------------------------------------------------------------------------------


def _loaded() -> tuple[Any, ...]:
    return (
        selectinload(PolicyApplication.policy),
        selectinload(PolicyApplication.enterprise),
        selectinload(PolicyApplication.loan),
    )


def applications_of_enterprise(actor: User) -> list[PolicyApplication]:
    enterprise = _enterprise_of(actor)
    return list(
        db.session.scalars(
            sa.select(PolicyApplication)
            .where(PolicyApplication.enterprise_id == enterprise.id)
            .order_by(PolicyApplication.id.desc())
            .options(*_loaded())
        )
    )


def office_applications_query(
    actor: User, status: PolicyApplicationStatus | None = None, policy_id: int | None = None
) -> sa.Select[Any]:
    """The applications the office reviews (those in ``status``, of ``policy_id``), oldest
    first, with what the list shows of each."""
    if actor.org_kind is not OrgKind.OFFICE:
        raise PermissionRefused(_l("Only the financial office reviews applications."))
    query = sa.select(PolicyApplication)
    if status is not None:
        query = query.where(PolicyApplication.status == status)
    if policy_id is not None:
        query = query.where(PolicyApplication.policy_id == policy_id)
    return query.order_by(PolicyApplication.submitted_at, PolicyApplication.id).options(*_loaded())


def applications_for_office(
    actor: User, status: PolicyApplicationStatus | None = None, policy_id: int | None = None
) -> list[PolicyApplication]:
    return list(db.session.scalars(office_applications_query(actor, status, policy_id)))


def count_for_office(actor: User, status: PolicyApplicationStatus | None = None) -> int:
    """How many applications :func:`office_applications_query` lists, counted in SQL."""
    query = office_applications_query(actor, status).order_by(None).options()
    counted = sa.select(sa.func.count()).select_from(
        query.with_only_columns(PolicyApplication.id).subquery()
    )
    return int(db.session.scalar(counted) or 0)


def application_for_office(actor: User, application_id: int) -> PolicyApplication | None:
    if actor.org_kind is not OrgKind.OFFICE:
        raise PermissionRefused(_l("Only the financial office reviews applications."))
    return db.session.get(PolicyApplication, application_id)


# For the dashboard ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TotalsFilter:
    kind: PolicyKind | None = None
    policy_id: int | None = None
    bank_org_id: int | None = None  # the lender of the loan attached
    region_prefix: str | None = None  # GB/T 2260 prefix of the enterprise


@dataclass(frozen=True)
class ApprovedTotal:
    month: str  # "YYYY-MM", Beijing time of the decision
    kind: PolicyKind
    count: int
    amount: Decimal


def approved_totals(
    start: dt.date, end: dt.date, filters: TotalsFilter | None = None
) -> list[ApprovedTotal]:
    """Approved amounts and counts by month and policy kind, for decisions made from
    ``start`` to ``end`` inclusive (Beijing dates), ordered by month then kind."""
    filters = filters or TotalsFilter()
    lo = dt.datetime.combine(start, dt.time(), SHANGHAI).astimezone(dt.UTC)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), SHANGHAI).astimezone(dt.UTC)
    query = (
        sa.select(
            PolicyApplication.decided_at, SupportPolicy.kind, PolicyApplication.approved_amount
        )
        .join(SupportPolicy, SupportPolicy.id == PolicyApplication.policy_id)
        .join(Loan, Loan.id == PolicyApplication.loan_id)
        .join(Enterprise, Enterprise.id == PolicyApplication.enterprise_id)
        .where(
            PolicyApplication.status == PolicyApplicationStatus.APPROVED,
            PolicyApplication.decided_at >= lo,
            PolicyApplication.decided_at < hi,
        )
    )
    if filters.kind is not None:
        query = query.where(SupportPolicy.kind == filters.kind)
    if filters.policy_id is not None:
        query = query.where(SupportPolicy.id == filters.policy_id)
    if filters.bank_org_id is not None:
        query = query.where(Loan.bank_org_id == filters.bank_org_id)
    if filters.region_prefix:
        query = query.where(Enterprise.region_code.startswith(filters.region_prefix))
    sums: dict[tuple[str, PolicyKind], list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    for decided, kind, amount in db.session.execute(query):
        if decided is None or amount is None:
            continue
        key = (decided.astimezone(SHANGHAI).strftime("%Y-%m"), kind)
        sums[key][0] += 1
        sums[key][1] += Decimal(amount)
    order = list(PolicyKind)
    return [
        ApprovedTotal(month, kind, count, amount)
        for (month, kind), (count, amount) in sorted(
            sums.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1]))
        )
    ]


# Demo ----------------------------------------------------------------------------------------


def seed_demo_policies() -> int:
    """Three published policies (one of each kind) and claims on the demo loans — approved,
    rejected and pending. A second run adds nothing. Returns the number of applications."""
    from app.services.demo import DEMO_LOGINS

    if db.session.scalar(sa.select(sa.func.count()).select_from(SupportPolicy)):
        return 0
    office = db.session.scalar(sa.select(User).where(User.email == DEMO_LOGINS["office"]))
    if office is None:
        return 0
    today = workdays.local_date()
    start, end = today - dt.timedelta(days=180), today + dt.timedelta(days=180)
    basis = "《加力帮扶中小微企业纾困解难若干措施》（2022年5月9日）第一条"
    plans = [
        PolicyTerms(
            name="中小微企业贷款贴息", kind=PolicyKind.INTEREST_SUBSIDY, period_start=start,
            period_end=end, total_budget=Decimal("2000000"), basis=f"{basis}：贷款贴息",
            description="按贷款利率给予贴息，最高 1 个百分点且不超过利息的一半。",
            subsidy_rate_pp=Decimal("1.0"), share_pct=Decimal("50"), annual_cap=Decimal("50000"),
            size_classes=("micro", "small", "medium"),
        ),
        PolicyTerms(
            name="政府性融资担保费补贴", kind=PolicyKind.GUARANTEE_FEE_SUBSIDY,
            period_start=start, period_end=end, total_budget=Decimal("1000000"),
            basis=f"{basis}：担保费补助", description="对已缴纳的融资担保费补贴 50%。",
            share_pct=Decimal("50"), annual_cap=Decimal("20000"),
        ),
        PolicyTerms(
            name="首贷户奖励", kind=PolicyKind.FIRST_LOAN_REWARD, period_start=start,
            period_end=end, total_budget=Decimal("500000"),
            basis="西宁市社会信用体系建设方案（十九）：首贷信用贷风险补偿",
            description="首次在平台获得贷款的企业，一次性奖励 5,000 元。",
            fixed_amount=Decimal("5000"), first_loan_only=True,
        ),
    ]  # fmt: skip
    made = []
    for terms in plans:
        policy = create(office, terms)
        publish(office, policy)
        made.append(policy)
    created = 0
    outcomes = ("approved", "rejected", "submitted", "approved", "submitted")
    for loan in db.session.scalars(sa.select(Loan).order_by(Loan.id).limit(40)):
        if created >= len(outcomes):
            break
        user = db.session.scalar(
            sa.select(User)
            .join(Enterprise, Enterprise.organization_id == User.organization_id)
            .where(Enterprise.id == loan.enterprise_id, User.role == Role.ADMIN)
        )
        if user is None:
            continue
        policy = made[created % 2 * 2]  # interest subsidy, first-loan reward, ...
        try:
            application = apply(user, policy, loan)
        except AccountError:
            continue
        outcome = outcomes[created]
        created += 1
        if outcome == "approved":
            approve(office, application)
        elif outcome == "rejected":
            reason = "贷款资金用途与政策支持方向不符，请补充用途证明后重新申请。"
            reject(office, application, reason)
    db.session.flush()
    return created
