"""What the financial office reports upward: loan volume, first loans, rates, bank behaviour.

Every figure is one SQL aggregate over the same filter (:class:`Filters`): loans by their
disbursement date (a Beijing calendar date), applications by the time they were submitted,
needs by the time they were posted — each restricted to the chosen bank and region. The
drill-down lists (:func:`loan_rows`, :func:`application_rows`) select exactly the rows
behind a figure, with the same conditions.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import selectinload

from app.services import workdays
from app.services.accounts import AccountError, PermissionRefused
from models import (
    ApplicationStatus,
    Enterprise,
    FinancingNeed,
    KpiTarget,
    LoanApplication,
    LoanProduct,
    LoanStatus,
    Organization,
    OrgKind,
    ProductType,
    Role,
    User,
    db,
)
from models.base import utcnow
from models.codes import industry_divisions
from models.loan import Loan

S = ApplicationStatus
# 信用贷款: loans without collateral. A government-procurement loan (政采贷) is secured by a
# pledge of the procurement contract's receivables; every other type on the platform is
# unsecured. The Huizhou plan (reference/004) targets the credit-loan share.
CREDIT_TYPES = tuple(t for t in ProductType if t is not ProductType.GOVERNMENT_PROCUREMENT)
DECIDED = (S.OFFERED, S.REJECTED, S.ACCEPTED, S.DECLINED, S.DISBURSED)
TAKEN_UP = (S.ACCEPTED, S.DISBURSED)
# Targets the office sets: metric → (label, default). Defaults from the Huizhou 信易贷 plan
# (reference/004: volume +30% on the year before, credit loans ≥ 25%) and a service level.
TARGETS: dict[str, tuple[Any, Decimal]] = {
    "volume_growth": (_l("Loan volume growth on the same period a year before (percent)"),
                      Decimal("30")),
    "credit_share": (_l("Credit-loan share of the amount lent (percent)"), Decimal("25")),
    "within_deadline": (_l("Applications answered within the deadline (percent)"),
                        Decimal("90")),
}  # fmt: skip
DIMENSIONS = ("month", "bank", "product_type", "industry", "region", "size_class")


@dataclass(frozen=True)
class Filters:
    start: dt.date  # inclusive, Beijing dates
    end: dt.date  # inclusive
    bank_org_id: int | None = None
    region_prefix: str = ""  # GB/T 2260 prefix: 2 (province), 4 (city) or 6 digits

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise AccountError(_l("The period ends before it starts."), field="end")
        if self.region_prefix and not (
            self.region_prefix.isdigit() and len(self.region_prefix) in (2, 4, 6)
        ):
            raise AccountError(
                _l("A region is 2, 4 or 6 digits of a GB/T 2260 code."), field="region"
            )

    def year_before(self) -> Filters:
        def back(day: dt.date) -> dt.date:
            try:
                return day.replace(year=day.year - 1)
            except ValueError:  # 29 February
                return day.replace(year=day.year - 1, day=28)

        return Filters(back(self.start), back(self.end), self.bank_org_id, self.region_prefix)

    def instants(self) -> tuple[dt.datetime, dt.datetime]:
        """The period as UTC instants: Beijing midnight of ``start`` up to that after ``end``."""
        lo = dt.datetime.combine(self.start, dt.time(), tzinfo=workdays.SHANGHAI)
        hi = dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time(), workdays.SHANGHAI)
        return lo.astimezone(dt.UTC), hi.astimezone(dt.UTC)


def default_filters(today: dt.date | None = None) -> Filters:
    """The year to date."""
    today = today or workdays.local_date()
    return Filters(today.replace(month=1, day=1), today)


def _require_office(actor: User) -> None:
    if actor.org_kind is not OrgKind.OFFICE:
        raise PermissionRefused(_l("Only the financial office sees the dashboard."))


# Loans ---------------------------------------------------------------------------------


def _loan_conditions(f: Filters) -> list[Any]:
    conditions: list[Any] = [Loan.disbursed_on >= f.start, Loan.disbursed_on <= f.end]
    if f.bank_org_id is not None:
        conditions.append(Loan.bank_org_id == f.bank_org_id)
    if f.region_prefix:
        conditions.append(Enterprise.region_code.startswith(f.region_prefix))
    return conditions


def _loans(f: Filters, *columns: Any) -> sa.Select[Any]:
    return (
        sa.select(*columns)
        .select_from(Loan)
        .join(Enterprise, Enterprise.id == Loan.enterprise_id)
        .join(LoanProduct, LoanProduct.id == Loan.product_id)
        .where(*_loan_conditions(f))
    )


def _month() -> Any:
    if db.session.get_bind().dialect.name == "postgresql":
        return sa.func.to_char(Loan.disbursed_on, "YYYY-MM")
    return sa.func.strftime("%Y-%m", Loan.disbursed_on)


def _dimension(name: str) -> Any:
    return {
        "month": _month(),
        "bank": Loan.bank_org_id,
        "product_type": LoanProduct.product_type,
        "industry": sa.func.substr(Enterprise.industry_code, 1, 1),
        "region": Enterprise.region_code,
        "size_class": Enterprise.size_class,
    }[name]


@dataclass(frozen=True)
class Cell:
    key: str
    label: str
    count: int
    amount: Decimal


@dataclass(frozen=True)
class Volume:
    count: int
    amount: Decimal


def volume(f: Filters, *extra: Any) -> Volume:
    count, amount = db.session.execute(
        _loans(f, sa.func.count(Loan.id), sa.func.coalesce(sa.func.sum(Loan.principal), 0)).where(
            *extra
        )
    ).one()
    return Volume(int(count), Decimal(amount).quantize(Decimal("0.01")))


def _labels(dimension: str, keys: Sequence[Any]) -> dict[Any, str]:
    if dimension == "bank":
        rows = db.session.execute(
            sa.select(Organization.id, Organization.name).where(
                Organization.id.in_([k for k in keys if k is not None])
            )
        )
        names = dict(rows.all())  # not dict(rows): a Result has .keys()
        return {k: names.get(k, str(k)) for k in keys}
    if dimension == "product_type":
        from app.bank.forms import TYPE_LABELS

        return {k: str(TYPE_LABELS.get(ProductType(k), k)) for k in keys}
    if dimension == "size_class":
        from app.services.matching import SIZE_LABELS

        return {k: str(SIZE_LABELS.get(str(k), k)) for k in keys}
    if dimension == "industry":
        sections = {d.section: d for d in industry_divisions().values()}
        return {k: f"{k} {sections[k].section_zh}" if k in sections else str(k) for k in keys}
    return {k: str(k) for k in keys}


def breakdown(f: Filters, dimension: str) -> list[Cell]:
    """Loan count and amount per value of ``dimension``, largest amount first (months in order)."""
    if dimension not in DIMENSIONS:
        raise ValueError(f"unknown dimension {dimension!r}")
    key = _dimension(dimension)
    rows = db.session.execute(
        _loans(f, key, sa.func.count(Loan.id), sa.func.sum(Loan.principal)).group_by(key)
    ).all()
    keys = [r[0].value if hasattr(r[0], "value") else r[0] for r in rows]
    labels = _labels(dimension, keys)
    cells = [
        Cell(str(k), labels[k], int(n), Decimal(a).quantize(Decimal("0.01")))
        for k, (_, n, a) in zip(keys, rows, strict=True)
    ]
    if dimension == "month":
        return sorted(cells, key=lambda c: c.key)
    return sorted(cells, key=lambda c: (-c.amount, c.key))


def loan_rows_query(f: Filters, dimension: str | None = None, key: str | None = None,
                    *, first_only: bool = False) -> sa.Select[Any]:  # fmt: skip
    """The loans behind a figure, in disbursement order, each with its enterprise, product
    and bank: the filter, and ``dimension == key`` when given."""
    stmt = _loans(f, Loan).options(
        selectinload(Loan.enterprise), selectinload(Loan.product).selectinload(LoanProduct.bank)
    )
    if dimension is not None:
        if dimension not in DIMENSIONS:
            raise ValueError(f"unknown dimension {dimension!r}")
        column = _dimension(dimension)
        stmt = stmt.where(column == (int(key) if dimension == "bank" and key else key))
    if first_only:
        stmt = stmt.where(Loan.first_loan.is_(True))
    return stmt.order_by(Loan.disbursed_on, Loan.id)


def loan_rows(f: Filters, dimension: str | None = None, key: str | None = None,
              *, first_only: bool = False) -> list[Loan]:  # fmt: skip
    """Every loan behind a figure (the download)."""
    return list(db.session.scalars(loan_rows_query(f, dimension, key, first_only=first_only)))


def loan_total(query: sa.Select[Any]) -> Decimal:
    """The principal of all the loans of :func:`loan_rows_query`, summed in the database."""
    loans = query.order_by(None).subquery()
    total = db.session.scalar(sa.select(sa.func.coalesce(sa.func.sum(loans.c.principal), 0)))
    return Decimal(total or 0).quantize(Decimal("0.01"))


# Applications and needs ------------------------------------------------------------------


def _application_conditions(f: Filters) -> list[Any]:
    lo, hi = f.instants()
    conditions: list[Any] = [
        LoanApplication.submitted_at >= lo,
        LoanApplication.submitted_at < hi,
    ]
    if f.bank_org_id is not None:
        conditions.append(LoanApplication.bank_org_id == f.bank_org_id)
    if f.region_prefix:
        conditions.append(Enterprise.region_code.startswith(f.region_prefix))
    return conditions


def _applications(f: Filters, *columns: Any) -> sa.Select[Any]:
    return (
        sa.select(*columns)
        .select_from(LoanApplication)
        .join(Enterprise, Enterprise.id == LoanApplication.enterprise_id)
        .where(*_application_conditions(f))
    )


def application_rows_query(f: Filters, metric: str = "submitted") -> sa.Select[Any]:
    """The applications behind an application figure (see :data:`APPLICATION_METRICS`),
    in submission order, each with its enterprise, product and bank."""
    stmt = _applications(f, LoanApplication).options(
        selectinload(LoanApplication.enterprise),
        selectinload(LoanApplication.product).selectinload(LoanProduct.bank),
    )
    stmt = stmt.where(*_metric_conditions(metric, utcnow()))
    return stmt.order_by(LoanApplication.submitted_at, LoanApplication.id)


def application_rows(f: Filters, metric: str = "submitted") -> list[LoanApplication]:
    return list(db.session.scalars(application_rows_query(f, metric)))


def _metric_conditions(metric: str, now: dt.datetime) -> list[Any]:
    decided = LoanApplication.decided_at.is_not(None)
    due = sa.or_(decided, LoanApplication.respond_by < now)
    on_time = sa.and_(decided, LoanApplication.decided_at <= LoanApplication.respond_by)
    conditions: dict[str, list[Any]] = {
        "submitted": [],
        "decided": [decided],
        "offered": [decided, LoanApplication.offer_amount.is_not(None)],
        "rejected": [LoanApplication.status == S.REJECTED],
        "due": [due],
        "on_time": [on_time],
        "late": [due, sa.not_(on_time)],
    }  # fmt: skip
    return conditions[metric]


APPLICATION_METRICS = ("submitted", "decided", "offered", "rejected", "due", "on_time", "late")


def _count(stmt: sa.Select[Any]) -> int:
    return int(db.session.scalar(stmt) or 0)


@dataclass
class Summary:
    filters: Filters
    loans: Volume
    first_loans: Volume
    credit_loans: Volume
    year_before: Volume
    average_rate: Decimal | None  # amount-weighted, percent
    submitted: int
    decided: int
    offered: int
    approval_rate: Decimal | None  # offers among decisions, percent
    median_days_to_decision: Decimal | None
    due: int
    on_time: int
    needs_posted: int
    needs_taken: int
    defaulted: int

    @property
    def credit_share(self) -> Decimal | None:
        return _percent(self.credit_loans.amount, self.loans.amount)

    @property
    def growth(self) -> Decimal | None:
        if not self.year_before.amount:
            return None
        return _percent(self.loans.amount - self.year_before.amount, self.year_before.amount)

    @property
    def within_deadline(self) -> Decimal | None:
        return _percent(Decimal(self.on_time), Decimal(self.due))


def _days(durations: list[float]) -> Decimal | None:
    """The median, in days to one decimal (half up)."""
    if not durations:
        return None
    return Decimal(str(statistics.median(durations))).quantize(Decimal("0.1"), ROUND_HALF_UP)


def _percent(part: Decimal, whole: Decimal) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"))


def summary(actor: User, f: Filters, now: dt.datetime | None = None) -> Summary:
    _require_office(actor)
    now = now or utcnow()
    loans = volume(f)
    weighted = db.session.scalar(_loans(f, sa.func.sum(Loan.principal * Loan.rate)))
    apps = _applications(f, sa.func.count(LoanApplication.id))
    decided = _count(apps.where(*_metric_conditions("decided", now)))
    offered = _count(apps.where(*_metric_conditions("offered", now)))
    durations = [
        (decided_at - submitted_at).total_seconds() / 86400
        for submitted_at, decided_at in db.session.execute(
            _applications(f, LoanApplication.submitted_at, LoanApplication.decided_at).where(
                LoanApplication.decided_at.is_not(None)
            )
        )
    ]
    lo, hi = f.instants()
    needs = (
        sa.select(sa.func.count(FinancingNeed.id))
        .select_from(FinancingNeed)
        .join(Enterprise, Enterprise.id == FinancingNeed.enterprise_id)
        .where(FinancingNeed.created_at >= lo, FinancingNeed.created_at < hi)
    )
    if f.region_prefix:
        needs = needs.where(Enterprise.region_code.startswith(f.region_prefix))
    # Needs belong to no bank until one takes them: with a bank filter, posted needs count
    # platform-wide and taken ones only when that bank took them.
    taken = needs.where(
        sa.exists().where(LoanApplication.need_id == FinancingNeed.id, *(
            [LoanApplication.bank_org_id == f.bank_org_id] if f.bank_org_id else []
        ))
    )  # fmt: skip
    return Summary(
        filters=f,
        loans=loans,
        first_loans=volume(f, Loan.first_loan.is_(True)),
        credit_loans=volume(f, LoanProduct.product_type.in_(CREDIT_TYPES)),
        year_before=volume(f.year_before()),
        average_rate=(Decimal(weighted) / loans.amount).quantize(Decimal("0.01"))
        if loans.amount and weighted is not None
        else None,
        submitted=_count(apps),
        decided=decided,
        offered=offered,
        approval_rate=_percent(Decimal(offered), Decimal(decided)),
        median_days_to_decision=_days(durations),
        due=_count(apps.where(*_metric_conditions("due", now))),
        on_time=_count(apps.where(*_metric_conditions("on_time", now))),
        needs_posted=_count(needs),
        needs_taken=_count(taken),
        defaulted=volume(f, Loan.status == LoanStatus.DEFAULTED).count,
    )


# The bank league table ----------------------------------------------------------------------


@dataclass
class BankRow:
    bank: Organization
    received: int = 0
    decided: int = 0
    offered: int = 0
    taken_up: int = 0
    due: int = 0
    on_time: int = 0
    median_days: Decimal | None = None
    rejections: Counter[str] = field(default_factory=Counter)
    loans: int = 0
    first_loans: int = 0
    defaulted: int = 0

    @property
    def within_deadline(self) -> Decimal | None:
        return _percent(Decimal(self.on_time), Decimal(self.due))

    @property
    def take_up(self) -> Decimal | None:
        return _percent(Decimal(self.taken_up), Decimal(self.offered))

    @property
    def first_loan_share(self) -> Decimal | None:
        return _percent(Decimal(self.first_loans), Decimal(self.loans))

    @property
    def default_rate(self) -> Decimal | None:
        return _percent(Decimal(self.defaulted), Decimal(self.loans))


def league_table(actor: User, f: Filters, now: dt.datetime | None = None) -> list[BankRow]:
    """Per bank: response time, deadline kept, take-up, rejection mix, first loans, defaults."""
    _require_office(actor)
    now = now or utcnow()
    banks = list(
        db.session.scalars(
            sa.select(Organization)
            .where(Organization.kind == OrgKind.BANK)
            .where(*([Organization.id == f.bank_org_id] if f.bank_org_id else []))
            .order_by(Organization.name)
        )
    )
    rows = {b.id: BankRow(b) for b in banks}
    days: dict[int, list[float]] = {b.id: [] for b in banks}
    for app in db.session.execute(
        _applications(
            f, LoanApplication.bank_org_id, LoanApplication.status, LoanApplication.submitted_at,
            LoanApplication.decided_at, LoanApplication.respond_by,
            LoanApplication.rejection_codes, LoanApplication.offer_amount,
        )
    ):  # fmt: skip
        row = rows.get(app.bank_org_id)
        if row is None:
            continue
        row.received += 1
        is_decided = app.decided_at is not None
        if is_decided:
            row.decided += 1
            elapsed = app.decided_at - app.submitted_at
            days[app.bank_org_id].append(elapsed.total_seconds() / 86400)
        if app.offer_amount is not None and is_decided:
            row.offered += 1
        if app.status in TAKEN_UP:
            row.taken_up += 1
        if is_decided or (app.respond_by is not None and app.respond_by < now):
            row.due += 1
            if is_decided and app.respond_by is not None and app.decided_at <= app.respond_by:
                row.on_time += 1
        if app.status is S.REJECTED:
            row.rejections.update(app.rejection_codes or [])
    for bank_id, n, first, defaulted in db.session.execute(
        _loans(
            f, Loan.bank_org_id, sa.func.count(Loan.id),
            sa.func.sum(sa.case((Loan.first_loan.is_(True), 1), else_=0)),
            sa.func.sum(sa.case((Loan.status == LoanStatus.DEFAULTED, 1), else_=0)),
        ).group_by(Loan.bank_org_id)
    ):  # fmt: skip
        if bank_id in rows:
            rows[bank_id].loans = int(n)
            rows[bank_id].first_loans = int(first or 0)
            rows[bank_id].defaulted = int(defaulted or 0)
    for bank_id, values in days.items():
        if values:
            rows[bank_id].median_days = _days(values)
    return list(rows.values())


# Targets ------------------------------------------------------------------------------------


def targets() -> dict[str, Decimal]:
    """The current value of every target (the latest setting, or the default)."""
    current = {metric: default for metric, (_label, default) in TARGETS.items()}
    latest = (
        sa.select(KpiTarget.metric, sa.func.max(KpiTarget.id).label("id"))
        .group_by(KpiTarget.metric)
        .subquery()
    )
    for metric, value in db.session.execute(
        sa.select(KpiTarget.metric, KpiTarget.value).join(latest, KpiTarget.id == latest.c.id)
    ):
        current[metric] = value
    return current


def set_target(actor: User, metric: str, value: Decimal, now: dt.datetime | None = None) -> None:
    """Office admins set a target; earlier settings stay as history."""
    _require_office(actor)
    if actor.role is not Role.ADMIN:
        raise PermissionRefused(_l("Only office administrators change targets."))
    if metric not in TARGETS:
        raise AccountError(_l("Unknown target."), field="metric")
    if not value.is_finite() or not Decimal(-100) <= value <= Decimal(1000):
        raise AccountError(_l("A target is a percentage between -100 and 1000."), field=metric)
    db.session.add(
        KpiTarget(metric=metric, value=value.quantize(Decimal("0.01")), set_by_user_id=actor.id,
                  set_at=now or utcnow())
    )  # fmt: skip
    db.session.flush()
    from app.services import audit

    audit.record(
        "dashboard.target", actor=actor, details={"metric": metric, "value": str(value)}, now=now
    )


@dataclass(frozen=True)
class TargetCheck:
    metric: str
    label: Any
    target: Decimal
    actual: Decimal | None

    @property
    def met(self) -> bool | None:
        return None if self.actual is None else self.actual >= self.target


def against_targets(s: Summary) -> list[TargetCheck]:
    current = targets()
    actual = {
        "volume_growth": s.growth,
        "credit_share": s.credit_share,
        "within_deadline": s.within_deadline,
    }
    return [
        TargetCheck(metric, label, current[metric], actual[metric])
        for metric, (label, _default) in TARGETS.items()
    ]


# Support policies ---------------------------------------------------------------------------


def support_by_kind(f: Filters) -> list[Cell]:
    """Support approved under the office's policies (by decision date), per policy kind —
    the same figures as :func:`app.services.policies.approved_totals`, summed over months."""
    from app.services import policies

    totals: dict[str, list[Any]] = {}
    for row in policies.approved_totals(
        f.start, f.end, policies.TotalsFilter(bank_org_id=f.bank_org_id,
                                              region_prefix=f.region_prefix or None)
    ):  # fmt: skip
        entry = totals.setdefault(row.kind.value, [str(policies.KIND_LABELS[row.kind]), 0, 0])
        entry[1] += row.count
        entry[2] += row.amount
    return [
        Cell(kind, label, count, Decimal(amount).quantize(Decimal("0.01")))
        for kind, (label, count, amount) in totals.items()
    ]
