"""Demo data for the embedded portal: the office, three banks, enterprises, demo logins.

Everything is keyed so a second run finds what the first created and adds only what is
missing (enterprises are generated from their index with a fixed seed).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa
from flask import current_app

from app.services import accounts
from models import (
    Authorization,
    AuthorizationKind,
    Enterprise,
    LoanProduct,
    Organization,
    OrgKind,
    ProductType,
    RepaymentMethod,
    Role,
    SizeClass,
    User,
    db,
)
from models.base import utcnow
from models.codes import USCC_CHARSET, industry_divisions, uscc_check_digit
from models.sme_size import classify_size

OFFICE_NAME = "福州市金融工作办公室（演示）"
BANK_NAMES = ("兴业银行福州分行（演示）", "福建海峡银行（演示）", "福州农村商业银行（演示）")
DEMO_LOGINS = {
    "office": "office@demo.test",
    "bank": "bank@demo.test",
    "enterprise": "sme@demo.test",
}
# Districts and counties of Fuzhou (GB/T 2260).
REGIONS = ("350102", "350103", "350104", "350105", "350111", "350112", "350121", "350122")
NAME_PARTS = (
    "闽江",
    "榕城",
    "鼓山",
    "海峡",
    "三坊",
    "七巷",
    "东湖",
    "西湖",
    "鳌峰",
    "马尾",
    "乌山",
    "屏山",
    "南台",
    "金山",
    "琅岐",
    "晋安",
    "仓山",
    "连江",
    "长乐",
    "永泰",
)
TRADE_WORDS = {
    "C": "制造",
    "F": "商贸",
    "E": "建设",
    "I": "科技",
    "H": "餐饮",
    "G": "物流",
    "M": "技术服务",
    "L": "商务服务",
    "A": "农业",
    "O": "生活服务",
}
EPOCH = dt.date(2026, 1, 1)


@dataclass(frozen=True)
class DemoSummary:
    password: str
    created_enterprises: int
    total_enterprises: int
    products: int = 0
    grants: int = 0
    records: int = 0
    profiles: int = 0


# Seven products per bank: (name, type, 万元 min, max, months min, max, rate min, max, rules)
PRODUCT_CATALOGUE: tuple[tuple[str, str, int, int, int, int, str, str, dict[str, object]], ...] = (
    ("税易贷", "tax_based", 10, 300, 6, 36, "3.45", "6.50",
     {"min_grade": "BB", "min_tax_months": 12, "required_scopes": ("tax",),
      "public_credit_classes": ("A", "B")}),
    ("信用快贷", "credit", 5, 100, 3, 12, "3.85", "7.20",
     {"min_grade": "B", "min_years_operating": "1"}),
    ("社保贷", "credit", 10, 200, 6, 24, "3.65", "6.80",
     {"min_grade": "BB", "min_social_months": 12, "required_scopes": ("social_insurance",)}),
    ("公积金信用贷", "provident_fund_based", 10, 200, 6, 36, "3.55", "6.20",
     {"min_grade": "BBB", "required_scopes": ("provident_fund",)}),
    ("政采贷", "government_procurement", 20, 500, 3, 12, "3.45", "5.50",
     {"min_grade": "BBB", "public_credit_classes": ("A",)}),
    ("首贷通", "first_loan", 5, 100, 6, 24, "3.50", "5.80",
     {"min_grade": "BB", "size_classes": ("micro", "small"), "pool_participation": True}),
    ("科技成长贷", "credit", 50, 1000, 12, 36, "3.30", "5.50",
     {"min_grade": "A", "industries_allowed": ("C", "I65", "M"), "min_annual_sales": "5000000"}),
)  # fmt: skip


def demo_uscc(index: int) -> str:
    rng = random.Random(f"uscc-{index}")  # noqa: S311 - demo data, not security
    body = "91" + rng.choice(REGIONS) + "".join(rng.choice(USCC_CHARSET) for _ in range(9))
    return body + uscc_check_digit(body)


def _demo_enterprise(index: int) -> dict[str, object]:
    rng = random.Random(f"enterprise-{index}")  # noqa: S311 - demo data, not security
    divisions = [d for d in industry_divisions().values() if d.section in TRADE_WORDS]
    division = rng.choice(divisions)
    employees = max(1, int(rng.lognormvariate(3.0, 1.0)))
    revenue_wan = Decimal(str(round(rng.lognormvariate(6.5, 1.3), 2)))
    assets_wan = (revenue_wan * Decimal(str(round(rng.uniform(0.5, 2.5), 2)))).quantize(
        Decimal("0.01")
    )
    name = (
        f"福州{rng.choice(NAME_PARTS)}{rng.choice(NAME_PARTS)}"
        f"{TRADE_WORDS[division.section]}有限公司"
    )
    return {
        "uscc": demo_uscc(index),
        "name": name,
        "legal_representative": rng.choice("林陈黄郑王李张吴刘杨")
        + rng.choice(("建华", "秀英", "志强", "丽娟", "明辉", "海燕", "国平", "晓东")),
        "founded_on": EPOCH - dt.timedelta(days=rng.randint(200, 25 * 365)),
        "region_code": rng.choice(REGIONS),
        "industry_code": division.code,
        "employees": employees,
        "annual_revenue": revenue_wan * 10_000,
        "total_assets": assets_wan * 10_000,
    }


def _get_or_create_org(kind: OrgKind, name: str) -> Organization:
    org = db.session.scalar(
        sa.select(Organization).where(Organization.kind == kind, Organization.name == name)
    )
    return org or accounts.create_organization(None, kind, name)


def _ensure_login(org: Organization, email: str, name: str, password: str) -> None:
    user = db.session.scalar(sa.select(User).where(User.email == email))
    if user is None:
        accounts.create_user(None, org, email, name, Role.ADMIN, password)
    else:
        accounts.set_password(user, password)
        user.is_active = True


def seed_demo(enterprises: int, password: str, *, activity: bool = True) -> DemoSummary:
    """Create (or complete) the demo; the three demo logins get ``password``.

    With ``activity``: products, a trained and approved model, collection and sharing grants,
    records collected through the sandbox connector, and credit profiles."""
    office = _get_or_create_org(OrgKind.OFFICE, OFFICE_NAME)
    banks = [_get_or_create_org(OrgKind.BANK, name) for name in BANK_NAMES]
    _ensure_login(office, DEMO_LOGINS["office"], "金融办管理员", password)
    _ensure_login(banks[0], DEMO_LOGINS["bank"], "信贷经理", password)

    existing = set(db.session.scalars(sa.select(Enterprise.uscc)))
    created = 0
    first_org: Organization | None = None
    for index in range(enterprises):
        data = _demo_enterprise(index)
        if data["uscc"] in existing:
            if index == 0:
                first_org = db.session.scalar(
                    sa.select(Organization).join(Enterprise).where(Enterprise.uscc == data["uscc"])
                )
            continue
        size = classify_size(
            str(data["industry_code"]),
            int(data["employees"]),  # type: ignore[call-overload]
            Decimal(data["annual_revenue"]),  # type: ignore[arg-type]
            Decimal(data["total_assets"]),  # type: ignore[arg-type]
        )
        org = Organization(kind=OrgKind.ENTERPRISE, name=str(data["name"]))
        db.session.add(org)
        db.session.add(Enterprise(organization=org, size_class=SizeClass(size), **data))
        existing.add(str(data["uscc"]))
        created += 1
        if index == 0:
            first_org = org
    db.session.flush()
    if first_org is not None:
        _ensure_login(first_org, DEMO_LOGINS["enterprise"], "企业经办人", password)
    total = db.session.scalar(sa.select(sa.func.count()).select_from(Enterprise)) or 0
    if not activity:
        return DemoSummary(password, created, int(total))
    n_products = _seed_products(banks)
    grants = _seed_grants(banks[0], password, enterprises)
    return DemoSummary(password, created, int(total), n_products, grants)


def seed_model_and_profiles() -> tuple[int, int]:
    """After the collection jobs have run: an approved model (trained on a synthetic
    population if none is approved yet) and a credit profile for every enterprise.
    Returns (records stored, enterprises whose latest profile has a grade)."""
    from app.services import model_registry, profiles
    from models.records import RECORD_MODELS

    if model_registry.serving_version() is None:
        model_registry.seed_demo_model(
            current_app.config.get("DEMO_MODEL_ENTERPRISES", 3000), seed=2026
        )
        db.session.flush()
    from app.services.model_monitoring import seed_demo_governance

    seed_demo_governance(current_app.config.get("DEMO_MODEL_ENTERPRISES", 3000), seed=2026)
    # Collection already queued a recompute per enterprise (before any model may have been
    # approved); here every enterprise not yet scored by the serving model gets a profile.
    serving = model_registry.serving_version()
    all_ids = list(db.session.scalars(sa.select(Enterprise.id)))
    latest = profiles.latest_profiles(all_ids)
    stale = [
        i for i in all_ids
        if i not in latest or (serving is not None and latest[i].model_version_id != serving.id)
    ]  # fmt: skip
    if stale:
        profiles.compute_all(stale, commit=False)
        db.session.flush()
    from app.services.objections import seed_demo_objections

    seed_demo_objections()
    graded = sum(1 for p in profiles.latest_profiles(all_ids).values() if p.grade is not None)
    records = sum(
        db.session.scalar(sa.select(sa.func.count()).select_from(model)) or 0
        for model in RECORD_MODELS.values()
    )
    return int(records), graded


def _seed_products(banks: list[Organization]) -> int:
    from app.services import products

    created = 0
    for b, bank in enumerate(banks):
        admin = db.session.scalar(
            sa.select(User).where(User.organization_id == bank.id, User.role == Role.ADMIN)
        )
        if admin is None:
            admin, _ = accounts.create_user(
                None, bank, f"bank{b + 1}-admin@demo.test", "产品管理员", Role.ADMIN,
                accounts.generate_password(),
            )  # fmt: skip
        for k, (name, kind, lo, hi, tmin, tmax, rmin, rmax, rules) in enumerate(PRODUCT_CATALOGUE):
            exists = db.session.scalar(
                sa.select(LoanProduct.id).where(
                    LoanProduct.bank_org_id == bank.id, LoanProduct.name == name
                )
            )
            if exists:
                continue
            shift = Decimal(b) * Decimal("0.10")
            terms = products.ProductTerms(
                name=name,
                product_type=ProductType(kind),
                amount_min=Decimal(lo) * 10_000,
                amount_max=Decimal(hi) * 10_000,
                term_min_months=tmin,
                term_max_months=tmax,
                rate_min=Decimal(rmin) + shift,
                rate_max=Decimal(rmax) + shift,
                repayment_method=(RepaymentMethod.EQUAL_INSTALLMENT, RepaymentMethod.INTEREST_ONLY)[
                    k % 2
                ],
                response_days=(3, 5, 7)[b],
                regions_allowed=("35",),
                min_annual_sales=Decimal(str(rules["min_annual_sales"]))
                if "min_annual_sales" in rules
                else None,
                min_years_operating=Decimal(str(rules["min_years_operating"]))
                if "min_years_operating" in rules
                else None,
                **{
                    k2: v
                    for k2, v in rules.items()
                    if k2 not in ("min_annual_sales", "min_years_operating")
                },  # type: ignore[arg-type]
            )
            product = products.create_draft(admin, terms)
            products.publish(admin, product)
            created += 1
    return created


def _seed_grants(bank: Organization, password: str, limit: int) -> int:
    """Every demo enterprise authorizes collection of all four sources; every third shares
    with the demo bank (every sixth with its records), every fifth with all banks. The
    records come through the real collection job and the sandbox connector, which run
    when the caller commits."""
    from app.services import authorization, collection
    from models.authorization import SCOPES

    enterprises = list(
        db.session.scalars(sa.select(Enterprise).order_by(Enterprise.id).limit(limit))
    )
    shared_hash = accounts.hash_password(password)  # one hash for all generated demo users
    grants = 0
    for i, enterprise in enumerate(enterprises):
        user = db.session.scalar(
            sa.select(User).where(User.organization_id == enterprise.organization_id)
        )
        if user is None:
            user = User(
                organization_id=enterprise.organization_id,
                email=f"sme-{i:04d}@demo.test",
                display_name="企业经办人",
                role=Role.ADMIN,
                password_hash=shared_hash,
            )
            db.session.add(user)
            db.session.flush()
        kinds = set(
            db.session.scalars(
                sa.select(Authorization.kind).where(Authorization.enterprise_id == enterprise.id)
            )
        )
        if AuthorizationKind.COLLECTION not in kinds:
            grant = authorization.grant(
                user, enterprise,
                authorization.GrantRequest(
                    kind=AuthorizationKind.COLLECTION, scopes=SCOPES, data_months=24
                ),
            )  # fmt: skip
            collection.start_collection(grant.id, None)
            grants += 1
        if AuthorizationKind.SHARING not in kinds and (i % 3 == 0 or i % 5 == 0):
            authorization.grant(
                user, enterprise,
                authorization.GrantRequest(
                    kind=AuthorizationKind.SHARING,
                    scopes=SCOPES,
                    grantee_org_id=None if i % 5 == 0 and i % 3 else bank.id,
                    all_banks=bool(i % 5 == 0 and i % 3),
                    include_records=i % 6 == 0,
                ),
            )  # fmt: skip
            grants += 1
    db.session.flush()
    return grants


def seed_applications(limit: int = 60) -> int:
    """Applications in every state (and loans with repayments and a default) for the first
    enterprises that qualify for a product of the demo bank, until ``limit`` enterprises have
    applied (so a second run adds nothing). Returns the number of applications created."""
    import datetime as dt_

    from app.services import applications, loans, matching, products, workdays
    from models import LoanApplication

    bank = db.session.scalar(sa.select(Organization).where(Organization.name == BANK_NAMES[0]))
    officer = db.session.scalar(sa.select(User).where(User.email == DEMO_LOGINS["bank"]))
    if bank is None or officer is None:
        return 0
    offered = products.published(products.Filters(bank_org_id=bank.id))
    applied = set(db.session.scalars(sa.select(LoanApplication.enterprise_id)))
    if len(applied) >= limit:  # seeded before: a second run adds nothing
        return 0
    limit -= len(applied)
    today = workdays.local_date()
    plan = ("submitted", "under_review", "offered", "rejected", "accepted", "declined",
            "disbursed", "repaid", "defaulted", "withdrawn")  # fmt: skip
    created = 0
    enterprises = db.session.scalars(sa.select(Enterprise).order_by(Enterprise.id).limit(200))
    for enterprise in enterprises:
        if created >= limit:
            break
        if enterprise.id in applied:
            continue
        user = db.session.scalar(
            sa.select(User).where(User.organization_id == enterprise.organization_id)
        )
        match = next((m for m in matching.explain(enterprise, offered) if m.eligible), None)
        if user is None or match is None:
            continue
        product, target = match.product, plan[created % len(plan)]
        amount = (product.amount_min + product.amount_max) / 4
        app = applications.create(
            user,
            product,
            amount.quantize(Decimal(1)),
            product.term_min_months,
            "采购原材料、补充流动资金",
        )
        applications.submit(user, app, confirm_sharing=True)
        created += 1
        if target == "submitted":
            continue
        if target == "withdrawn":
            applications.withdraw(user, app)
            continue
        applications.start_review(officer, app)
        if target == "under_review":
            continue
        if target == "rejected":
            applications.reject(officer, app, ["policy"], "本季度额度已用完，欢迎下季度再申请。")
            continue
        applications.make_offer(
            officer, app, amount=app.amount, rate=match.expected_rate or product.rate_max,
            term_months=app.term_months, fee=Decimal(0), valid_until=today + dt_.timedelta(days=14),
        )  # fmt: skip
        if target == "offered":
            continue
        if target == "declined":
            applications.decline(user, app)
            continue
        applications.accept(user, app)
        if target == "accepted":
            continue
        # Disbursements spread over the last fifteen months, so the office dashboard shows
        # a trend and a year-on-year comparison.
        disbursed_on = today - dt_.timedelta(days=40 + 29 * (created % 15))
        loan = loans.disburse(officer, app, disbursed_on)
        if target == "repaid":
            loans.record_repayment(
                officer, loan, loan.outstanding, disbursed_on + dt_.timedelta(days=35)
            )
        elif target == "defaulted":
            loans.record_overdue(officer, loan, disbursed_on + dt_.timedelta(days=20), 40)
            loans.record_default(officer, loan, disbursed_on + dt_.timedelta(days=38))
        else:
            loans.record_repayment(
                officer,
                loan,
                (loan.principal / 12).quantize(Decimal("0.01")),
                disbursed_on + dt_.timedelta(days=30),
            )
    from app.services.pool import seed_demo_pool

    seed_demo_pool()  # the risk-compensation pool: funding, reserves, claims
    db.session.flush()
    return created


def seed_needs(limit: int = 12) -> int:
    """Financing needs — open, taken by the demo bank, withdrawn — and one application the
    demo bank left past its deadline (for the office's overdue list). The demo enterprise
    login gets an open need. A second run adds nothing. Returns the number of needs."""
    from app.services import applications, matching, needs, products
    from models import FinancingNeed, LoanApplication

    if db.session.scalar(sa.select(sa.func.count()).select_from(FinancingNeed)):
        return 0
    officer = db.session.scalar(sa.select(User).where(User.email == DEMO_LOGINS["bank"]))
    offered = products.published()
    if officer is None or not offered:
        return 0
    demo_user = db.session.scalar(sa.select(User).where(User.email == DEMO_LOGINS["enterprise"]))
    busy = set(
        db.session.scalars(
            sa.select(LoanApplication.enterprise_id).where(
                LoanApplication.status.in_(applications.OPEN_STATUSES)
            )
        )
    )
    candidates = list(db.session.scalars(sa.select(Enterprise).order_by(Enterprise.id).limit(300)))
    plan = ("open", "taken", "open", "withdrawn", "open", "taken")
    now = utcnow()
    created = 0
    late_done = False
    for enterprise in candidates:
        if created >= limit and late_done:
            break
        is_demo = demo_user is not None and enterprise.organization_id == demo_user.organization_id
        if enterprise.id in busy and not is_demo:
            continue
        user = demo_user if is_demo else db.session.scalar(
            sa.select(User).where(User.organization_id == enterprise.organization_id)
        )  # fmt: skip
        match = next((m for m in matching.explain(enterprise, offered) if m.eligible), None)
        if user is None or match is None:
            continue
        product = match.product
        if not late_done and not is_demo and product.bank_org_id == officer.organization_id:
            # Submitted three weeks ago and never answered: past any product's deadline.
            late = applications.create(
                user, product, (product.amount_min * 2).quantize(Decimal(1)),
                product.term_min_months, "扩大产能、采购设备", now=now - dt.timedelta(days=21),
            )  # fmt: skip
            applications.submit(user, late, confirm_sharing=True, now=now - dt.timedelta(days=21))
            late_done = True
            continue
        if created >= limit:
            continue
        target = "open" if is_demo else plan[created % len(plan)]
        terms = needs.NeedTerms(
            amount=min(product.amount_max, product.amount_min * 2).quantize(Decimal(1)),
            term_months=product.term_min_months,
            purpose="补充流动资金，支付原材料货款",
            max_rate=product.rate_max,
            valid_days=30,
        )
        need = needs.post(user, terms, confirm_sharing=True)
        created += 1
        if target == "withdrawn":
            needs.withdraw(user, need)
        elif target == "taken":
            own = needs.matching_products(need, officer.organization_id)
            if own:
                needs.take(officer, need, own[0])
    db.session.flush()
    return created
