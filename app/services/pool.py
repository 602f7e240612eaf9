"""The risk-compensation pool (风险补偿资金池): settings, eligibility, the double-entry ledger,
claims and recoveries.

Every change to a pool's money or exposure goes through :func:`_locked`, which takes the pool
row as the lock (PostgreSQL: ``SELECT … FOR UPDATE``; SQLite: a write to the row, which takes
SQLite's single write lock) and re-reads it, so checks made afterwards see every committed
change and nothing can slip between check and write. The invariants —

* ``balance ≥ 0`` (also a CHECK constraint), ``exposure ≥ 0``;
* a reservation never takes ``exposure`` above ``leverage × balance`` (a payout of money
  owed may; then reservations stop until a deposit restores the headroom);
* a loan is reserved once (``pool_coverage.loan_id`` is UNIQUE);
* the ledger sums to the running totals (:func:`check_invariants`)

— therefore hold with any number of concurrent writers. Each operation has a request key;
the same key again changes nothing (its entries' keys are unique). Services flush; the caller
commits, through :func:`transact` where it should retry on a serialization failure.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import g, has_request_context
from flask_babel import lazy_gettext as _l
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import joinedload, selectinload

from app.services import audit, notifications, workdays
from app.services.accounts import AccountError, PermissionRefused
from app.services.paging import PER_PAGE, Page, page_of
from app.services.products import grades
from models import (
    Enterprise,
    LoanProduct,
    OrgKind,
    Role,
    User,
    db,
)
from models.base import utcnow
from models.codes import PROVINCE_PREFIXES
from models.loan import Loan, LoanEvent, LoanEventKind, LoanStatus
from models.pool import (
    ClaimStatus,
    CoverageStatus,
    PoolAccount,
    PoolClaim,
    PoolCoverage,
    PoolEntryKind,
    PoolLedgerEntry,
    RiskPool,
)
from models.profile import CreditProfile

CENT = Decimal("0.01")
SIZE_CLASSES = ("micro", "small", "medium", "large")
SERIOUS_DISHONESTY_CLASSES = ("C", "D")
A = PoolAccount
NO_LOSS = _l("Recoveries have covered the principal: there is no loss to claim.")

ENTRY_LABELS = {
    PoolEntryKind.DEPOSIT: _l("Deposit"),
    PoolEntryKind.RESERVE: _l("Reserve"),
    PoolEntryKind.RELEASE: _l("Release"),
    PoolEntryKind.CLAIM: _l("Claim approved"),
    PoolEntryKind.PAYOUT: _l("Payout"),
    PoolEntryKind.RECOVERY: _l("Recovery"),
}
CLAIM_LABELS = {
    ClaimStatus.FILED: _l("Filed, awaiting review"),
    ClaimStatus.APPROVED: _l("Approved, awaiting funds"),
    ClaimStatus.PAID: _l("Approved and paid"),
    ClaimStatus.REJECTED: _l("Rejected"),
}
SIZE_LABELS = {
    "micro": _l("Micro"),
    "small": _l("Small"),
    "medium": _l("Medium"),
    "large": _l("Large"),
}


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _split(value: str | None) -> list[str]:
    return [v for v in (value or "").split(",") if v]


# Settings ---------------------------------------------------------------------------------


@dataclass
class PoolSettings:
    name: str
    funding_target: Decimal
    coverage_ratio: Decimal
    first_loan_ratio: Decimal
    per_loan_cap: Decimal
    per_bank_cap: Decimal
    leverage: Decimal
    period_start: dt.date
    period_end: dt.date
    size_classes: tuple[str, ...] = ()
    first_loan_only: bool = False
    min_grade: str | None = None
    region_prefixes: tuple[str, ...] = ()
    exclude_serious_dishonesty: bool = True

    @classmethod
    def of(cls, pool: RiskPool) -> PoolSettings:
        return cls(
            name=pool.name, funding_target=pool.funding_target,
            coverage_ratio=pool.coverage_ratio, first_loan_ratio=pool.first_loan_ratio,
            per_loan_cap=pool.per_loan_cap, per_bank_cap=pool.per_bank_cap,
            leverage=pool.leverage, period_start=pool.period_start, period_end=pool.period_end,
            size_classes=tuple(_split(pool.size_classes)), first_loan_only=pool.first_loan_only,
            min_grade=pool.min_grade, region_prefixes=tuple(_split(pool.region_prefixes)),
            exclude_serious_dishonesty=pool.exclude_serious_dishonesty,
        )  # fmt: skip


def validate_settings(s: PoolSettings) -> None:
    """Raise :class:`AccountError` naming the first field that is not acceptable."""
    if not s.name.strip() or len(s.name) > 120:
        raise AccountError(_l("Give the pool a name (at most 120 characters)."), field="name")
    if s.funding_target <= 0:
        raise AccountError(_l("The funding target must be more than 0."), field="funding_target")
    if not Decimal("0.05") <= s.coverage_ratio <= Decimal("0.80"):
        raise AccountError(
            _l("The coverage ratio is a share between 0.05 and 0.80 (e.g. 0.40)."),
            field="coverage_ratio",
        )
    if not s.coverage_ratio <= s.first_loan_ratio <= Decimal("0.80"):
        raise AccountError(
            _l("The first-loan ratio is at least the coverage ratio and at most 0.80."),
            field="first_loan_ratio",
        )
    if s.per_loan_cap <= 0:
        raise AccountError(_l("The per-loan cap must be more than 0."), field="per_loan_cap")
    if s.per_bank_cap < s.per_loan_cap:
        raise AccountError(
            _l("The per-bank cap must be at least the per-loan cap."), field="per_bank_cap"
        )
    if not Decimal(1) <= s.leverage <= Decimal(20):
        raise AccountError(
            _l("The leverage limit is between 1 and 20 (exposure up to k times the balance)."),
            field="leverage",
        )
    if s.period_end <= s.period_start:
        raise AccountError(_l("The period must end after it starts."), field="period_end")
    bad = [c for c in s.size_classes if c not in SIZE_CLASSES]
    if bad:
        raise AccountError(_l("Unknown size classes."), field="size_classes")
    if s.min_grade and s.min_grade not in grades():
        raise AccountError(
            _l("Unknown grade; use one of %(g)s.", g=", ".join(grades())), field="min_grade"
        )
    bad = [
        p for p in s.region_prefixes
        if not (p.isdigit() and len(p) in (2, 4, 6) and p[:2] in PROVINCE_PREFIXES)
    ]  # fmt: skip
    if bad:
        raise AccountError(
            _l(
                "Not GB/T 2260 region prefixes (2, 4 or 6 digits): %(codes)s.", codes=", ".join(bad)
            ),
            field="region_prefixes",
        )


def _require_office(actor: User, *, admin: bool = False) -> None:
    allowed = (Role.ADMIN,) if admin else (Role.ADMIN, Role.OFFICER)
    if actor.org_kind is not OrgKind.OFFICE or actor.role not in allowed:
        raise PermissionRefused(_l("Only the financial office's officers manage the pool."))


def _apply(pool: RiskPool, s: PoolSettings) -> None:
    pool.name = s.name.strip()
    pool.funding_target = s.funding_target
    pool.coverage_ratio = s.coverage_ratio
    pool.first_loan_ratio = s.first_loan_ratio
    pool.per_loan_cap = s.per_loan_cap
    pool.per_bank_cap = s.per_bank_cap
    pool.leverage = s.leverage
    pool.period_start = s.period_start
    pool.period_end = s.period_end
    pool.size_classes = ",".join(s.size_classes)
    pool.first_loan_only = s.first_loan_only
    pool.min_grade = s.min_grade or None
    pool.region_prefixes = ",".join(s.region_prefixes)
    pool.exclude_serious_dishonesty = s.exclude_serious_dishonesty


def create_pool(actor: User | None, settings: PoolSettings) -> RiskPool:
    if actor is not None:
        _require_office(actor, admin=True)
    validate_settings(settings)
    pool = RiskPool(balance=Decimal(0), exposure=Decimal(0), claims_payable=Decimal(0))
    _apply(pool, settings)
    db.session.add(pool)
    db.session.flush()
    audit.record(
        "pool.create", actor=actor, object_type="risk_pool", object_id=pool.id,
        details={"name": pool.name},
    )  # fmt: skip
    return pool


def update_pool(actor: User, pool: RiskPool, settings: PoolSettings) -> RiskPool:
    """New settings apply to loans disbursed from now on; existing coverage is kept."""
    _require_office(actor, admin=True)
    validate_settings(settings)
    pool = _locked(pool.id)
    before = PoolSettings.of(pool)
    _apply(pool, settings)
    pool.updated_at = utcnow()
    db.session.flush()
    changed = {
        k: [str(getattr(before, k)), str(getattr(settings, k))]
        for k in before.__dataclass_fields__
        if getattr(before, k) != getattr(settings, k)
    }
    audit.record(
        "pool.settings", actor=actor, object_type="risk_pool", object_id=pool.id,
        details={"changed": changed},
    )  # fmt: skip
    return pool


def current_pool(on: dt.date | None = None) -> RiskPool | None:
    """The pool open on ``on`` (today), the earliest created if several are."""
    on = on or workdays.local_date()
    return db.session.scalar(
        sa.select(RiskPool)
        .where(RiskPool.period_start <= on, RiskPool.period_end >= on)
        .order_by(RiskPool.id)
        .limit(1)
    )


def latest_pool() -> RiskPool | None:
    """The pool the office manages: the open one, else the newest."""
    return current_pool() or db.session.scalar(
        sa.select(RiskPool).order_by(RiskPool.id.desc()).limit(1)
    )


# Locking, posting, retries --------------------------------------------------------------


def _locked(pool_id: int) -> RiskPool:
    """The pool row, locked for the rest of the transaction and freshly read."""
    if db.session.get_bind().dialect.name == "sqlite":
        # A write takes SQLite's database write lock now, before anything is read.
        db.session.execute(
            sa.update(RiskPool).where(RiskPool.id == pool_id).values(updated_at=utcnow())
        )
        stmt = sa.select(RiskPool).where(RiskPool.id == pool_id)
    else:
        stmt = sa.select(RiskPool).where(RiskPool.id == pool_id).with_for_update()
    pool = db.session.scalars(stmt.execution_options(populate_existing=True)).one()
    return pool


def _replayed(key: str) -> PoolLedgerEntry | None:
    return db.session.scalar(
        sa.select(PoolLedgerEntry).where(PoolLedgerEntry.idempotency_key == f"{key}#1")
    )


def _post(
    pool: RiskPool, kind: PoolEntryKind, debit: PoolAccount, credit: PoolAccount,
    amount: Decimal, key: str, leg: int, actor: User | None, *, loan: Loan | None = None,
    bank_org_id: int | None = None, claim: PoolClaim | None = None, memo: str = "",
) -> PoolLedgerEntry:  # fmt: skip
    """One entry, and the running totals it moves (the pool must be locked)."""
    amount = _money(amount)
    for account, sign in ((debit, 1), (credit, -1)):
        if account is A.CASH:
            pool.balance += sign * amount
        elif account is A.EXPOSURE:
            pool.exposure += sign * amount
        elif account is A.CLAIMS_PAYABLE:
            pool.claims_payable -= sign * amount  # a liability: credit raises it
    entry = PoolLedgerEntry(
        pool_id=pool.id, kind=kind, debit=debit, credit=credit, amount=amount,
        loan_id=loan.id if loan else None,
        bank_org_id=bank_org_id if bank_org_id is not None else getattr(loan, "bank_org_id", None),
        claim_id=claim.id if claim else None, idempotency_key=f"{key}#{leg}", memo=memo[:300],
        created_by=actor.id if actor else None, at=utcnow(),
    )  # fmt: skip
    db.session.add(entry)
    return entry


T = TypeVar("T")
RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected


def _retryable(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code in RETRYABLE_SQLSTATES or "database is locked" in str(exc.orig)


def transact(work: Callable[[], T], attempts: int = 5) -> T:
    """Run ``work`` and commit; on a serialization failure or deadlock roll back and run it
    again (it must read everything it needs itself). Other errors roll back and propagate."""
    for attempt in range(1, attempts + 1):
        try:
            result = work()
            db.session.commit()
            return result
        except DBAPIError as exc:
            db.session.rollback()
            if attempt == attempts or not _retryable(exc):
                raise
        except BaseException:
            db.session.rollback()
            raise
    raise AssertionError("unreachable")


def new_request_key() -> str:
    """A key for a form: the same submission twice is one operation."""
    return secrets.token_urlsafe(16)


# Deposits ---------------------------------------------------------------------------------


def deposit(
    actor: User | None, pool: RiskPool, amount: Decimal, request_key: str, memo: str = ""
) -> PoolLedgerEntry:
    """Money paid into the pool. The same ``request_key`` again returns the first entry."""
    if actor is not None:
        _require_office(actor)
    if amount <= 0 or _money(amount) != amount:
        raise AccountError(_l("A deposit is more than 0 CNY, in yuan and fen."), field="amount")
    if not request_key:
        raise AccountError(_l("The form expired; reload the page."), field="amount")
    key = f"deposit:{request_key}"
    pool = _locked(pool.id)
    done = _replayed(key)
    if done is not None:
        if done.amount != amount or done.pool_id != pool.id:
            raise AccountError(
                _l("This request was already carried out with another amount."), field="amount"
            )
        return done
    entry = _post(pool, PoolEntryKind.DEPOSIT, A.CASH, A.FUNDING, amount, key, 1, actor, memo=memo)
    db.session.flush()
    audit.record(
        "pool.deposit", actor=actor, object_type="risk_pool", object_id=pool.id,
        details={"amount": str(amount), "balance": str(pool.balance)},
    )  # fmt: skip
    return entry


# Eligibility --------------------------------------------------------------------------------


@dataclass
class Check:
    rule: str
    passed: bool
    text: Any  # the requirement and the enterprise's value, in words (lazy, translated)
    remedy: Any = None  # what would change it, when anything would


@dataclass
class Eligibility:
    pool: RiskPool | None
    checks: list[Check] = field(default_factory=list)
    ratio: Decimal | None = None
    covered_amount: Decimal | None = None
    first_loan: bool = False

    @property
    def eligible(self) -> bool:
        return self.pool is not None and all(c.passed for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


def coverage_for(pool: RiskPool, amount: Decimal, first_loan: bool) -> tuple[Decimal, Decimal]:
    """(ratio, covered amount): ratio × principal, capped per loan."""
    ratio = pool.first_loan_ratio if first_loan else pool.coverage_ratio
    return ratio, min(_money(ratio * amount), pool.per_loan_cap)


def is_first_loan(enterprise_id: int) -> bool:
    return not db.session.scalar(
        sa.select(sa.func.count()).select_from(Loan).where(Loan.enterprise_id == enterprise_id)
    )


def _latest_profile(enterprise_id: int) -> CreditProfile | None:
    return db.session.scalar(
        sa.select(CreditProfile)
        .where(CreditProfile.enterprise_id == enterprise_id)
        .order_by(CreditProfile.computed_at.desc(), CreditProfile.id.desc())
        .limit(1)
    )


def eligibility(
    enterprise: Enterprise,
    product: LoanProduct,
    amount: Decimal | None,
    first_loan: bool,
    *,
    pool: RiskPool | None = None,
    profile: CreditProfile | None = None,
    on: dt.date | None = None,
) -> Eligibility:
    """Would a loan of ``amount`` under ``product`` be covered by the pool? Each rule with the
    enterprise's value in words and what would change it. ``profile`` defaults to the
    enterprise's latest credit profile; ``pool`` to the pool open today."""
    pool = pool or current_pool(on)
    decision = Eligibility(pool=pool, first_loan=first_loan)
    if pool is None:
        decision.checks.append(Check("pool", False, _l("No risk-compensation pool is open now.")))
        return decision
    on = on or workdays.local_date()
    checks = decision.checks
    if not pool.period_start <= on <= pool.period_end:
        checks.append(Check("period", False, _l(
            "The pool covers loans disbursed from %(a)s to %(b)s.",
            a=pool.period_start.isoformat(), b=pool.period_end.isoformat(),
        )))  # fmt: skip
    checks.append(
        Check(
            "product",
            product.pool_participation,
            _l("The product must take part in the pool; this one does.")
            if product.pool_participation
            else _l("The product must take part in the pool; this one does not."),
            None if product.pool_participation else _l("Choose a product marked Pool."),
        )
    )
    sizes = _split(pool.size_classes)
    if sizes:
        size = enterprise.size_class.value
        checks.append(Check("size", size in sizes, _l(
            "The pool covers %(allowed)s enterprises; yours is %(size)s.",
            allowed=", ".join(str(SIZE_LABELS[s]) for s in sizes), size=SIZE_LABELS[size],
        )))  # fmt: skip
    if pool.first_loan_only:
        checks.append(Check(
            "first_loan", first_loan,
            _l("The pool covers first loans (首贷) only; this would be your first loan.")
            if first_loan else
            _l("The pool covers first loans (首贷) only; you have borrowed here before."),
        ))  # fmt: skip
    if profile is None:
        profile = _latest_profile(enterprise.id)
    if pool.min_grade:
        names = grades()
        needed = names.index(pool.min_grade) if pool.min_grade in names else None
        rank = profile.grade_rank if profile is not None else None
        ok = needed is not None and rank is not None and rank <= needed
        checks.append(Check(
            "grade", ok,
            _l("Needs credit grade %(g)s or better; yours: %(y)s.", g=pool.min_grade,
               y=(profile.grade if profile and profile.grade else _l("no grade yet"))),
            None if ok else _l(
                "A better grade: the credit-health simulator on your profile page shows how."
            ),
        ))  # fmt: skip
    prefixes = _split(pool.region_prefixes)
    if prefixes:
        ok = any(enterprise.region_code.startswith(p) for p in prefixes)
        checks.append(Check("region", ok, _l(
            "The pool covers enterprises registered in regions %(r)s; yours: %(y)s.",
            r=", ".join(prefixes), y=enterprise.region_code,
        )))  # fmt: skip
    if pool.exclude_serious_dishonesty:
        klass = profile.public_credit_class if profile is not None else None
        ok = klass is not None and klass not in SERIOUS_DISHONESTY_CLASSES
        checks.append(Check(
            "dishonesty", ok,
            _l("No serious dishonesty (public-credit class A or B); yours: %(c)s.",
               c=klass or _l("not assessed yet")),
            None if ok else (
                _l("Repair the records (信用修复) or wait until their publication period ends.")
                if klass else _l("Authorize data collection so a credit profile can be built.")
            ),
        ))  # fmt: skip
    ratio, covered = coverage_for(pool, amount or product.amount_max, first_loan)
    decision.ratio = ratio
    if amount is not None:
        decision.covered_amount = covered
        room = pool.headroom
        checks.append(Check(
            "capacity", covered <= room,
            _l("The pool has room for %(c)s CNY of cover; %(r)s CNY is free now.",
               c=f"{covered:,.2f}", r=f"{room:,.2f}"),
            None if covered <= room else _l(
                "Cover depends on room in the pool at disbursement; a smaller amount fits sooner."
            ),
        ))  # fmt: skip
    return decision


def precheck(
    product: LoanProduct, enterprise: Enterprise | None = None, amount: Decimal | None = None
) -> Eligibility | None:
    """The pre-check shown on product, match and application pages (cached per request).

    ``enterprise`` defaults to the enterprise the logged-in user acts for."""
    if enterprise is None:
        from flask_login import current_user

        from app.services.enterprises import enterprise_of

        if not current_user.is_authenticated or current_user.org_kind is not OrgKind.ENTERPRISE:
            return None
        enterprise = enterprise_of(current_user)
    cache: dict[Any, Any] = {}
    if has_request_context():
        cache = g.setdefault("pool_precheck", {})
    if "pool" not in cache:
        cache["pool"] = current_pool()
    key = ("e", enterprise.id)
    if key not in cache:
        cache[key] = (_latest_profile(enterprise.id), is_first_loan(enterprise.id))
    profile, first = cache[key]
    return eligibility(enterprise, product, amount, first, pool=cache["pool"], profile=profile)


# Reserve and release -----------------------------------------------------------------------


def bank_exposure(pool_id: int, bank_org_id: int) -> Decimal:
    return Decimal(
        db.session.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(PoolCoverage.covered_amount), 0)).where(
                PoolCoverage.pool_id == pool_id,
                PoolCoverage.bank_org_id == bank_org_id,
                PoolCoverage.status == CoverageStatus.RESERVED,
            )
        )
        or 0
    )


@dataclass
class ReserveResult:
    coverage: PoolCoverage | None
    decision: Eligibility
    refused: Any = None  # why a loan that passed the rules was not covered (capacity)


def reserve(actor: User | None, loan: Loan, *, pool: RiskPool | None = None) -> ReserveResult:
    """Cover ``loan`` if its product takes part and the pool's checks pass: ratio × principal
    capped per loan; refused (no coverage, the loan stands) when the per-bank cap or the
    leverage limit would be exceeded. A loan is reserved once; calling again returns its
    coverage."""
    pool = pool or current_pool(loan.disbursed_on)
    enterprise = db.session.get(Enterprise, loan.enterprise_id)
    product = db.session.get(LoanProduct, loan.product_id)
    if enterprise is None or product is None:
        raise LookupError(f"loan {loan.id} lacks its enterprise or product")
    if pool is None:
        return ReserveResult(
            None, eligibility(enterprise, product, loan.principal, loan.first_loan)
        )
    pool = _locked(pool.id)
    existing = db.session.scalar(sa.select(PoolCoverage).where(PoolCoverage.loan_id == loan.id))
    decision = eligibility(
        enterprise, product, loan.principal, loan.first_loan, pool=pool, on=loan.disbursed_on
    )
    if existing is not None:
        return ReserveResult(existing, decision)
    if not decision.eligible:
        failed = [c for c in decision.failed if c.rule != "capacity"]
        if failed:
            return ReserveResult(None, decision)
    ratio, covered = coverage_for(pool, loan.principal, loan.first_loan)
    if bank_exposure(pool.id, loan.bank_org_id) + covered > pool.per_bank_cap:
        return ReserveResult(None, decision, _l("The bank's cap in the pool is reached."))
    if pool.exposure + covered > pool.capacity:
        return ReserveResult(
            None, decision, _l("The pool's leverage limit is reached (exposure ≤ k × balance).")
        )
    coverage = PoolCoverage(
        pool_id=pool.id, loan_id=loan.id, bank_org_id=loan.bank_org_id, ratio=ratio,
        covered_amount=covered, first_loan=loan.first_loan, status=CoverageStatus.RESERVED,
    )  # fmt: skip
    db.session.add(coverage)
    _post(
        pool, PoolEntryKind.RESERVE, A.EXPOSURE, A.COMMITMENTS, covered,
        f"reserve:loan:{loan.id}", 1, actor, loan=loan,
    )  # fmt: skip
    db.session.flush()
    audit.record(
        "pool.reserve", actor=actor, enterprise_id=loan.enterprise_id, object_type="loan",
        object_id=loan.id, details={"covered": str(covered), "ratio": str(ratio)},
    )  # fmt: skip
    return ReserveResult(coverage, decision)


def coverage_of(loan_id: int) -> PoolCoverage | None:
    return db.session.scalar(sa.select(PoolCoverage).where(PoolCoverage.loan_id == loan_id))


def release(actor: User | None, loan: Loan) -> PoolCoverage | None:
    """The loan is repaid or closed: its coverage no longer counts as exposure."""
    coverage = coverage_of(loan.id)
    if coverage is None:
        return None
    pool = _locked(coverage.pool_id)
    db.session.refresh(coverage)
    if coverage.status is not CoverageStatus.RESERVED:
        return coverage
    _post(
        pool, PoolEntryKind.RELEASE, A.COMMITMENTS, A.EXPOSURE, coverage.covered_amount,
        f"release:loan:{loan.id}", 1, actor, loan=loan,
    )  # fmt: skip
    coverage.status = CoverageStatus.RELEASED
    coverage.closed_at = utcnow()
    db.session.flush()
    audit.record(
        "pool.release", actor=actor, enterprise_id=loan.enterprise_id, object_type="loan",
        object_id=loan.id, details={"released": str(coverage.covered_amount)},
    )  # fmt: skip
    return coverage


# Claims -------------------------------------------------------------------------------------


def _recovered(loan_id: int) -> Decimal:
    return Decimal(
        db.session.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(LoanEvent.amount), 0)).where(
                LoanEvent.loan_id == loan_id, LoanEvent.kind == LoanEventKind.RECOVERY
            )
        )
        or 0
    )


def principal_loss(loan: Loan) -> Decimal:
    """Principal outstanding at default less what has been recovered since."""
    return max(loan.outstanding - _recovered(loan.id), Decimal(0))


def claim_amount(coverage: PoolCoverage, loss: Decimal) -> Decimal:
    return min(_money(coverage.ratio * loss), coverage.covered_amount)


def _open_claim(loan_id: int) -> PoolClaim | None:
    return db.session.scalar(
        sa.select(PoolClaim).where(
            PoolClaim.loan_id == loan_id,
            PoolClaim.status.in_([ClaimStatus.FILED, ClaimStatus.APPROVED, ClaimStatus.PAID]),
        )
    )


def file_claim(actor: User, loan: Loan, evidence: str, evidence_files: str = "") -> PoolClaim:
    """The lending bank claims on a defaulted covered loan; the amount is computed."""
    if (
        actor.org_kind is not OrgKind.BANK
        or actor.organization_id != loan.bank_org_id
        or actor.role is Role.VIEWER
    ):
        raise PermissionRefused(_l("Only the lending bank's officers file a claim."))
    coverage = coverage_of(loan.id)
    if coverage is None:
        raise AccountError(_l("This loan is not covered by the pool."))
    if loan.status is not LoanStatus.DEFAULTED:
        raise AccountError(_l("A claim can be filed only once the loan is in default."))
    evidence = (evidence or "").strip()
    if len(evidence) < 10:
        raise AccountError(
            _l("Describe the evidence (collection efforts, court filings, documents)."),
            field="evidence",
        )  # fmt: skip
    pool = _locked(coverage.pool_id)
    if _open_claim(loan.id) is not None:
        raise AccountError(_l("A claim on this loan is already open or paid."))
    if coverage.status is not CoverageStatus.RESERVED:
        raise AccountError(_l("This loan's coverage has been released."))
    loss = principal_loss(loan)
    if loss <= 0:
        raise AccountError(NO_LOSS)
    claim = PoolClaim(
        pool_id=pool.id, coverage_id=coverage.id, loan_id=loan.id, bank_org_id=loan.bank_org_id,
        principal_loss=loss, amount_claimed=claim_amount(coverage, loss), evidence=evidence[:5000],
        evidence_files=(evidence_files or "").strip()[:1000], status=ClaimStatus.FILED,
        filed_by=actor.id, filed_at=utcnow(),
    )  # fmt: skip
    db.session.add(claim)
    db.session.flush()
    audit.record(
        "pool.claim_filed", actor=actor, enterprise_id=loan.enterprise_id,
        object_type="pool_claim", object_id=claim.id,
        details={"loan_id": loan.id, "amount": str(claim.amount_claimed)},
    )  # fmt: skip
    notifications.notify(
        notifications.office_org_ids(), "claim.filed",
        {"bank": actor.organization.name, "ref": claim.id}, actor=actor,
    )  # fmt: skip
    return claim


def review(actor: User, claim: PoolClaim, decision: str, reason: str = "") -> PoolClaim:
    """``approve`` (the claim is recognised, the loan's coverage becomes the claim and is paid
    at once if the pool has the money) or ``reject`` (a reason is required)."""
    _require_office(actor)
    reason = (reason or "").strip()
    if decision not in ("approve", "reject"):
        raise AccountError(_l("Approve or reject."), field="decision")
    if decision == "reject" and not reason:
        raise AccountError(_l("Give the bank a reason for the rejection."), field="reason")
    pool = _locked(claim.pool_id)
    db.session.refresh(claim)
    if claim.status is not ClaimStatus.FILED:
        raise AccountError(_l("This claim has already been decided."))
    claim.reviewed_by, claim.reviewed_at = actor.id, utcnow()
    claim.decision_reason = reason[:1000] or None
    if decision == "reject":
        claim.status = ClaimStatus.REJECTED
        db.session.flush()
    else:
        loan = claim.loan
        coverage = claim.coverage
        loss = principal_loss(loan)
        if loss <= 0:
            raise AccountError(
                _l("Recoveries have covered the principal: there is no loss to claim.")
            )
        claim.principal_loss, claim.amount_claimed = loss, claim_amount(coverage, loss)
        key = f"claim:{claim.id}"
        _post(pool, PoolEntryKind.CLAIM, A.CLAIM_LOSSES, A.CLAIMS_PAYABLE,
              claim.amount_claimed, key, 1, actor, loan=loan, claim=claim)  # fmt: skip
        _post(pool, PoolEntryKind.RELEASE, A.COMMITMENTS, A.EXPOSURE,
              coverage.covered_amount, key, 2, actor, loan=loan, claim=claim,
              memo="coverage taken over by the claim")  # fmt: skip
        coverage.status, coverage.closed_at = CoverageStatus.CLAIMED, utcnow()
        claim.status = ClaimStatus.APPROVED
        db.session.flush()
        _pay(actor, pool, claim)
    audit.record(
        f"pool.claim_{'approved' if decision == 'approve' else 'rejected'}", actor=actor,
        enterprise_id=claim.loan.enterprise_id, object_type="pool_claim", object_id=claim.id,
        details={"amount": str(claim.amount_claimed), "reason": reason},
    )  # fmt: skip
    notifications.notify(
        [claim.bank_org_id],
        "claim.rejected" if claim.status is ClaimStatus.REJECTED else "claim.approved",
        {"amount": f"{claim.amount_claimed:,.2f}", "reason": reason, "ref": claim.id},
    )  # fmt: skip
    return claim


def _pay(actor: User | None, pool: RiskPool, claim: PoolClaim) -> bool:
    if claim.status is not ClaimStatus.APPROVED or pool.balance < claim.amount_claimed:
        return False
    _post(pool, PoolEntryKind.PAYOUT, A.CLAIMS_PAYABLE, A.CASH, claim.amount_claimed,
          f"payout:{claim.id}", 1, actor, loan=claim.loan, claim=claim)  # fmt: skip
    claim.status, claim.paid_at = ClaimStatus.PAID, utcnow()
    db.session.flush()
    audit.record(
        "pool.payout", actor=actor, enterprise_id=claim.loan.enterprise_id,
        object_type="pool_claim", object_id=claim.id, details={"amount": str(claim.amount_claimed)},
    )  # fmt: skip
    return True


def payout(actor: User, claim: PoolClaim) -> bool:
    """Pay an approved claim that waited for funds. False while the balance is short."""
    _require_office(actor)
    pool = _locked(claim.pool_id)
    db.session.refresh(claim)
    if claim.status is not ClaimStatus.APPROVED:
        raise AccountError(_l("Only an approved, unpaid claim can be paid."))
    if not _pay(actor, pool, claim):
        raise AccountError(_l("The pool's balance is short of the claim; deposit first."))
    return True


def record_recovery(actor: User | None, loan: Loan, amount: Decimal, event_id: int) -> Decimal:
    """A recovery on a defaulted loan whose claim the pool approved: the pool's share
    (claim ÷ principal loss of the amount, pro rata) comes back. Returns that share."""
    claim = db.session.scalar(
        sa.select(PoolClaim).where(
            PoolClaim.loan_id == loan.id,
            PoolClaim.status.in_([ClaimStatus.APPROVED, ClaimStatus.PAID]),
        )
    )
    if claim is None:
        return Decimal(0)  # nothing paid yet: the recovery lowers the loss a claim will state
    pool = _locked(claim.pool_id)
    db.session.refresh(claim)
    share = _money(amount * claim.amount_claimed / claim.principal_loss)
    share = min(share, claim.amount_claimed - claim.recovered_to_pool)
    if share <= 0:
        return Decimal(0)
    _post(pool, PoolEntryKind.RECOVERY, A.CASH, A.RECOVERED, share,
          f"recovery:event:{event_id}", 1, actor, loan=loan, claim=claim)  # fmt: skip
    claim.recovered_to_pool += share
    db.session.flush()
    audit.record(
        "pool.recovery", actor=actor, enterprise_id=loan.enterprise_id, object_type="pool_claim",
        object_id=claim.id, details={"recovered": str(amount), "pool_share": str(share)},
    )  # fmt: skip
    return share


# Reading ------------------------------------------------------------------------------------


@dataclass
class LedgerRow:
    entry: PoolLedgerEntry
    cash_change: Decimal
    running_balance: Decimal
    exposure_change: Decimal


def ledger(pool: RiskPool, limit: int | None = None) -> list[LedgerRow]:
    """Entries oldest first with the cash balance after each (newest first if ``limit``:
    the ``limit`` newest, read as :func:`ledger_page` reads a page)."""
    if limit is not None:
        return ledger_page(pool, 1, per_page=limit).items
    rows: list[LedgerRow] = []
    running = Decimal(0)
    for entry in db.session.scalars(
        sa.select(PoolLedgerEntry)
        .where(PoolLedgerEntry.pool_id == pool.id)
        .order_by(PoolLedgerEntry.id)
    ):
        cash = _signed(entry, A.CASH)
        running += cash
        rows.append(LedgerRow(entry, cash, running, _signed(entry, A.EXPOSURE)))
    return rows


def ledger_page(pool: RiskPool, page: int, per_page: int = PER_PAGE) -> Page[LedgerRow]:
    """Page ``page`` of the pool's entries, newest first, each with the cash balance after
    it: the page is read in SQL, and the balance after its newest entry is the sum of every
    cash movement up to it, summed in the database (a pool's books grow by two entries a
    covered loan: never read whole to show fifty)."""
    found = page_of(
        sa.select(PoolLedgerEntry)
        .where(PoolLedgerEntry.pool_id == pool.id)
        .order_by(PoolLedgerEntry.id.desc()),
        page,
        per_page,
    )
    rows: list[LedgerRow] = []
    if found.items:
        cash_movement = sa.case(
            (PoolLedgerEntry.debit == A.CASH, PoolLedgerEntry.amount),
            (PoolLedgerEntry.credit == A.CASH, -PoolLedgerEntry.amount),
            else_=0,
        )
        running = Decimal(
            db.session.scalar(
                sa.select(sa.func.coalesce(sa.func.sum(cash_movement), 0)).where(
                    PoolLedgerEntry.pool_id == pool.id,
                    PoolLedgerEntry.id <= found.items[0].id,
                )
            )
            or 0
        )
        for entry in found.items:  # newest first: the balance before it is the next one's
            cash = _signed(entry, A.CASH)
            rows.append(LedgerRow(entry, cash, _money(running), _signed(entry, A.EXPOSURE)))
            running -= cash
    return Page(rows, found.total, found.page, found.pages)


def _signed(entry: PoolLedgerEntry, account: PoolAccount) -> Decimal:
    if entry.debit is account:
        return entry.amount
    if entry.credit is account:
        return -entry.amount
    return Decimal(0)


def account_balances(pool_id: int) -> dict[PoolAccount, Decimal]:
    """Debits − credits per account, summed in the database."""
    totals = {a: Decimal(0) for a in PoolAccount}
    for column, sign in ((PoolLedgerEntry.debit, 1), (PoolLedgerEntry.credit, -1)):
        for account, total in db.session.execute(
            sa.select(column, sa.func.sum(PoolLedgerEntry.amount))
            .where(PoolLedgerEntry.pool_id == pool_id)
            .group_by(column)
        ):
            totals[PoolAccount(account)] += sign * Decimal(total)
    return {a: _money(v) for a, v in totals.items()}


def check_invariants(pool: RiskPool) -> list[str]:
    """Problems found (empty when the books are sound)."""
    problems = []
    b = account_balances(pool.id)
    if sum(b.values()) != 0:
        problems.append("ledger does not balance")
    if b[A.CASH] != pool.balance:
        problems.append(f"cash account {b[A.CASH]} != balance {pool.balance}")
    if b[A.EXPOSURE] != pool.exposure:
        problems.append(f"exposure account {b[A.EXPOSURE]} != exposure {pool.exposure}")
    if -b[A.CLAIMS_PAYABLE] != pool.claims_payable:
        problems.append("claims payable differ")
    if pool.balance < 0 or pool.exposure < 0:
        problems.append("negative balance or exposure")
    reserved = Decimal(
        db.session.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(PoolCoverage.covered_amount), 0)).where(
                PoolCoverage.pool_id == pool.id, PoolCoverage.status == CoverageStatus.RESERVED
            )
        )
        or 0
    )
    if _money(reserved) != pool.exposure:
        problems.append(f"reserved coverage {reserved} != exposure {pool.exposure}")
    return problems


@dataclass
class PoolFigures:
    balance: Decimal
    exposure: Decimal
    capacity: Decimal
    headroom: Decimal
    claims_payable: Decimal
    covered_loans: int
    deposited: Decimal
    paid_out: Decimal
    recovered: Decimal
    funding_share: Decimal  # deposited ÷ funding target
    open_claims: int


def figures(pool: RiskPool) -> PoolFigures:
    b = account_balances(pool.id)
    covered = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(PoolCoverage)
        .where(PoolCoverage.pool_id == pool.id, PoolCoverage.status == CoverageStatus.RESERVED)
    )
    open_claims = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(PoolClaim)
        .where(
            PoolClaim.pool_id == pool.id,
            PoolClaim.status.in_([ClaimStatus.FILED, ClaimStatus.APPROVED]),
        )
    )
    deposited = -b[A.FUNDING]
    return PoolFigures(
        balance=pool.balance, exposure=pool.exposure, capacity=pool.capacity,
        headroom=pool.headroom, claims_payable=pool.claims_payable, covered_loans=int(covered or 0),
        deposited=deposited, paid_out=b[A.PAID_OUT], recovered=-b[A.RECOVERED],
        funding_share=(deposited / pool.funding_target) if pool.funding_target else Decimal(0),
        open_claims=int(open_claims or 0),
    )  # fmt: skip


def office_claims_query(statuses: Iterable[ClaimStatus] | None = None) -> sa.Select[Any]:
    """Every claim (or those in ``statuses``), newest first, each with its bank and its
    loan's enterprise (the list shows them: loaded with the claims, not one by one)."""
    stmt = (
        sa.select(PoolClaim)
        .options(
            joinedload(PoolClaim.bank), selectinload(PoolClaim.loan).joinedload(Loan.enterprise)
        )
        .order_by(PoolClaim.filed_at.desc(), PoolClaim.id.desc())
    )
    if statuses is not None:
        stmt = stmt.where(PoolClaim.status.in_(list(statuses)))
    return stmt


def claims_for_office(statuses: Iterable[ClaimStatus] | None = None) -> list[PoolClaim]:
    return list(db.session.scalars(office_claims_query(statuses)))


def bank_claims_query(actor: User) -> sa.Select[Any]:
    """The actor's bank's claims, newest first, each with its loan's enterprise."""
    return (
        sa.select(PoolClaim)
        .options(selectinload(PoolClaim.loan).joinedload(Loan.enterprise))
        .where(PoolClaim.bank_org_id == actor.organization_id)
        .order_by(PoolClaim.filed_at.desc(), PoolClaim.id.desc())
    )


def claims_for_bank(actor: User) -> list[PoolClaim]:
    return list(db.session.scalars(bank_claims_query(actor)))


def claimable_loans(actor: User) -> list[tuple[Loan, PoolCoverage]]:
    """The bank's defaulted covered loans with no open or paid claim, each with its
    enterprise (one statement, however many)."""
    claimed = (
        sa.select(PoolClaim.id)
        .where(
            PoolClaim.loan_id == Loan.id,
            PoolClaim.status.in_([ClaimStatus.FILED, ClaimStatus.APPROVED, ClaimStatus.PAID]),
        )
        .exists()
    )
    rows = db.session.execute(
        sa.select(Loan, PoolCoverage)
        .join(PoolCoverage, PoolCoverage.loan_id == Loan.id)
        .options(joinedload(Loan.enterprise))
        .where(
            Loan.bank_org_id == actor.organization_id,
            Loan.status == LoanStatus.DEFAULTED,
            PoolCoverage.status == CoverageStatus.RESERVED,
            ~claimed,
        )
        .order_by(Loan.id)
    ).all()
    return [(loan, cov) for loan, cov in rows]


# Demo ---------------------------------------------------------------------------------------


def seed_demo_pool() -> dict[str, int]:
    """A funded pool open this year, reserves for the demo's covered loans, one filed claim
    and one approved (paid) claim. A second run adds nothing."""
    office = db.session.scalar(
        sa.select(User).join(User.organization).where(
            User.role == Role.ADMIN, User.organization.has(kind=OrgKind.OFFICE)
        ).order_by(User.id).limit(1)
    )  # fmt: skip
    today = workdays.local_date()
    pool = latest_pool()
    if pool is None:
        pool = create_pool(office, PoolSettings(
            name="首贷信用贷风险补偿资金池", funding_target=Decimal("50000000"),
            coverage_ratio=Decimal("0.40"), first_loan_ratio=Decimal("0.50"),
            per_loan_cap=Decimal("2000000"), per_bank_cap=Decimal("20000000"),
            leverage=Decimal("10"), period_start=dt.date(today.year - 1, 1, 1),
            period_end=dt.date(today.year + 1, 12, 31), size_classes=("micro", "small", "medium"),
            exclude_serious_dishonesty=True,
        ))  # fmt: skip
        deposit(office, pool, Decimal("30000000"), "demo-initial-funding", "财政首期注资")
    bank_users: dict[int, User | None] = {}
    reserved = 0
    for loan in db.session.scalars(sa.select(Loan).where(Loan.pool_candidate).order_by(Loan.id)):
        if coverage_of(loan.id) is None:
            if reserve(None, loan, pool=pool).coverage is None:
                continue
            reserved += 1
            if loan.status is LoanStatus.REPAID:
                release(None, loan)
    claims = 0
    if not db.session.scalar(sa.select(sa.func.count()).select_from(PoolClaim)):
        reserved += _demo_pool_loans(pool)
        for loan, _cov in [
            (lo, c)
            for lo, c in db.session.execute(
                sa.select(Loan, PoolCoverage)
                .join(PoolCoverage, PoolCoverage.loan_id == Loan.id)
                .where(Loan.status == LoanStatus.DEFAULTED)
                .order_by(Loan.id)
            ).all()
        ][:2]:
            if loan.bank_org_id not in bank_users:
                bank_users[loan.bank_org_id] = db.session.scalar(
                    sa.select(User).where(
                        User.organization_id == loan.bank_org_id, User.role != Role.VIEWER
                    ).order_by(User.id).limit(1)
                )  # fmt: skip
            officer = bank_users[loan.bank_org_id]
            if officer is None:
                continue
            claim = file_claim(
                officer, loan,
                "借款人逾期超过90天，已发出催收函三次，已向法院提起诉讼（案号见附件）。",
                "催收记录.pdf, 起诉状.pdf",
            )  # fmt: skip
            claims += 1
            if claims == 1 and office is not None:
                review(office, claim, "approve", "材料齐全，符合首贷风险补偿条件。")
    db.session.flush()
    return {"pool_id": pool.id, "reserved": reserved, "claims": claims}


def _demo_pool_loans(pool: RiskPool, wanted: int = 3) -> int:
    """Loans on the demo bank's pool products for enterprises that qualify, until ``wanted``
    covered loans exist, two of them defaulted (for the demo claims). Returns how many."""
    from app.services import applications, loans, matching

    covered = (
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(PoolCoverage)
            .where(PoolCoverage.pool_id == pool.id)
        )
        or 0
    )
    defaulted = db.session.scalar(
        sa.select(sa.func.count()).select_from(PoolCoverage).join(Loan)
        .where(Loan.status == LoanStatus.DEFAULTED)
    ) or 0  # fmt: skip
    products = list(db.session.scalars(
        sa.select(LoanProduct).where(
            LoanProduct.pool_participation.is_(True), LoanProduct.status == "published"
        ).order_by(LoanProduct.id)
    ))  # fmt: skip
    made = 0
    today = workdays.local_date()
    for enterprise in db.session.scalars(sa.select(Enterprise).order_by(Enterprise.id).limit(300)):
        if covered >= wanted and defaulted >= 2:
            break
        user = db.session.scalar(
            sa.select(User).where(User.organization_id == enterprise.organization_id).limit(1)
        )
        if user is None:
            continue
        match = next((m for m in matching.explain(enterprise, products) if m.eligible), None)
        if match is None:
            continue
        product = match.product
        officer = db.session.scalar(
            sa.select(User).where(
                User.organization_id == product.bank_org_id, User.role != Role.VIEWER
            ).order_by(User.id).limit(1)
        )  # fmt: skip
        amount = _money(product.amount_min + (product.amount_max - product.amount_min) / 3)
        if (
            officer is None
            or not eligibility(
                enterprise, product, amount, is_first_loan(enterprise.id), pool=pool
            ).eligible
        ):
            continue
        try:
            with db.session.begin_nested():
                app = applications.create(
                    user, product, amount, product.term_min_months, "补充流动资金"
                )
                applications.submit(user, app, confirm_sharing=True)
                applications.start_review(officer, app)
                applications.make_offer(
                    officer, app, amount=amount, rate=product.rate_max,
                    term_months=app.term_months, fee=Decimal(0),
                    valid_until=today + dt.timedelta(days=14),
                )  # fmt: skip
                applications.accept(user, app)
                loan = loans.disburse(officer, app, today - dt.timedelta(days=120))
        except AccountError:
            continue
        if coverage_of(loan.id) is None:
            continue
        made += 1
        covered += 1
        if defaulted < 2:
            loans.record_overdue(officer, loan, today - dt.timedelta(days=30), 95)
            loans.record_default(officer, loan, today - dt.timedelta(days=3))
            defaulted += 1
    return made
