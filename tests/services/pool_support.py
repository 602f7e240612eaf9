"""Builders for pool tests: a pool, a pool product, loans (inserted directly, fast)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from app.extensions import db
from app.services import pool as pool_service
from app.services import products, workdays
from models import (
    ApplicationStatus,
    CreditProfile,
    Enterprise,
    LoanApplication,
    OrgKind,
    ProductType,
    RepaymentMethod,
    User,
)
from models.loan import Loan, LoanStatus
from models.pool import RiskPool

TODAY = workdays.local_date()


def settings(**overrides: Any) -> pool_service.PoolSettings:
    values: dict[str, Any] = {
        "name": "测试资金池",
        "funding_target": Decimal("10000000"),
        "coverage_ratio": Decimal("0.40"),
        "first_loan_ratio": Decimal("0.50"),
        "per_loan_cap": Decimal("1000000"),
        "per_bank_cap": Decimal("100000000"),
        "leverage": Decimal("5"),
        "period_start": TODAY - dt.timedelta(days=365),
        "period_end": TODAY + dt.timedelta(days=365),
        "exclude_serious_dishonesty": False,
    }
    values.update(overrides)
    return pool_service.PoolSettings(**values)


def make_pool(balance: Decimal | None = None, **overrides: Any) -> RiskPool:
    pool = pool_service.create_pool(None, settings(**overrides))
    if balance:
        pool_service.deposit(None, pool, balance, f"seed-{pool.id}")
    db.session.flush()
    return pool


@dataclass
class World:
    office: User
    bank: User
    other_bank: User
    sme: User
    enterprise: Enterprise
    product: Any


def make_world(factory: Any) -> World:
    office = db.session.get(User, factory.user(OrgKind.OFFICE).user_id)
    bank = db.session.get(User, factory.user(OrgKind.BANK).user_id)
    other = db.session.get(User, factory.user(OrgKind.BANK).user_id)
    sme = db.session.get(User, factory.enterprise().user_id)
    enterprise = db.session.query(Enterprise).filter_by(organization_id=sme.organization_id).one()
    product = products.create_draft(
        bank,
        products.ProductTerms(
            name="首贷通", product_type=ProductType.FIRST_LOAN, amount_min=Decimal("50000"),
            amount_max=Decimal("2000000"), term_min_months=3, term_max_months=24,
            rate_min=Decimal("3.5"), rate_max=Decimal("6.5"),
            repayment_method=RepaymentMethod.EQUAL_INSTALLMENT, response_days=5,
            pool_participation=True,
        ),
    )  # fmt: skip
    products.publish(bank, product)
    db.session.commit()
    return World(office, bank, other, sme, enterprise, product)


def make_loan(
    enterprise_id: int,
    product: Any,
    principal: Decimal = Decimal("100000"),
    *,
    first_loan: bool = False,
    bank_org_id: int | None = None,
) -> Loan:
    """A loan row as disbursement leaves it (without the pool hook)."""
    bank_org_id = bank_org_id or product.bank_org_id
    app = LoanApplication(
        enterprise_id=enterprise_id, product_id=product.id, bank_org_id=bank_org_id,
        amount=principal, term_months=12, purpose="test", status=ApplicationStatus.DISBURSED,
    )  # fmt: skip
    db.session.add(app)
    db.session.flush()
    loan = Loan(
        application_id=app.id, enterprise_id=enterprise_id, bank_org_id=bank_org_id,
        product_id=product.id, principal=principal, rate=Decimal("4.5"), term_months=12,
        disbursed_on=TODAY, maturity_on=TODAY + dt.timedelta(days=365), first_loan=first_loan,
        pool_candidate=True, outstanding=principal, status=LoanStatus.ACTIVE,
    )  # fmt: skip
    db.session.add(loan)
    db.session.flush()
    return loan


def add_profile(
    enterprise_id: int, *, pd: str = "0.02", public_credit_class: str = "A"
) -> CreditProfile:
    profile = CreditProfile(
        enterprise_id=enterprise_id, as_of=TODAY, pd=Decimal(pd),
        public_credit_class=public_credit_class, content_hash="0" * 64,
    )  # fmt: skip
    db.session.add(profile)
    db.session.flush()
    return profile
