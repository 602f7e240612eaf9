"""Banks' products: validation of terms and rules, the draft → published → retired life."""

from decimal import Decimal

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.services import products
from app.services.accounts import AccountError, PermissionRefused
from models import (
    AuditEvent,
    LoanProduct,
    OrgKind,
    ProductStatus,
    ProductType,
    RepaymentMethod,
    Role,
    User,
)


def terms(**overrides):
    base = {
        "name": "税易贷",
        "product_type": ProductType.TAX_BASED,
        "amount_min": Decimal("100000"),
        "amount_max": Decimal("3000000"),
        "term_min_months": 6,
        "term_max_months": 36,
        "rate_min": Decimal("3.45"),
        "rate_max": Decimal("6.00"),
        "repayment_method": RepaymentMethod.EQUAL_INSTALLMENT,
        "response_days": 5,
        "min_grade": "BBB",
        "public_credit_classes": ("A", "B"),
        "min_annual_sales": Decimal("1000000"),
        "min_tax_months": 12,
        "industries_allowed": ("C", "F51"),
        "regions_allowed": ("35",),
        "size_classes": ("micro", "small"),
        "required_scopes": ("tax",),
    }
    return products.ProductTerms(**{**base, **overrides})


@pytest.fixture
def bank_admin(app_ctx, factory):
    return db.session.get(User, factory.user(OrgKind.BANK).user_id)


def test_draft_publish_retire_and_revise(bank_admin):
    product = products.create_draft(bank_admin, terms())
    assert product.status is ProductStatus.DRAFT
    products.update_draft(bank_admin, product, terms(rate_min=Decimal("3.20")))
    assert product.rate_min == Decimal("3.20")
    products.publish(bank_admin, product)
    assert product.status is ProductStatus.PUBLISHED and product.published_at is not None
    with pytest.raises(AccountError, match="cannot be edited"):
        products.update_draft(bank_admin, product, terms(rate_min=Decimal("2")))
    revised = products.revise(bank_admin, product)
    assert revised.status is ProductStatus.DRAFT and revised.revised_from_id == product.id
    assert products.terms_of(revised) == products.terms_of(product)
    products.retire(bank_admin, product)
    assert product.status is ProductStatus.RETIRED
    assert [p.id for p in products.published()] == []
    actions = db.session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.seq)).all()
    assert actions == ["product.publish", "product.retire"]


@pytest.mark.parametrize(
    "overrides,field",
    [
        ({"amount_min": Decimal("0")}, "amount_min"),
        ({"amount_max": Decimal("50000")}, "amount_max"),
        ({"term_min_months": 0}, "term_min_months"),
        ({"term_max_months": 3}, "term_max_months"),
        ({"rate_max": Decimal("3.0")}, "rate_max"),
        ({"rate_min": Decimal("0")}, "rate_min"),
        ({"min_grade": "Z"}, "min_grade"),
        ({"public_credit_classes": ("E",)}, "public_credit_classes"),
        ({"min_tax_months": -1}, "min_tax_months"),
        ({"industries_allowed": ("C99",)}, "industries_allowed"),
        ({"industries_excluded": ("C",)}, "industries_excluded"),
        ({"regions_allowed": ("99",)}, "regions_allowed"),
        ({"regions_allowed": ("350",)}, "regions_allowed"),
        ({"response_days": 0}, "response_days"),
        ({"name": "  "}, "name"),
    ],
)
def test_contradictory_or_unknown_rules_are_refused(bank_admin, overrides, field):
    with pytest.raises(AccountError) as err:
        products.create_draft(bank_admin, terms(**overrides))
    assert err.value.field == field
    assert db.session.scalar(sa.select(sa.func.count()).select_from(LoanProduct)) == 0


def test_only_the_banks_admins_manage_its_products(bank_admin, factory):
    product = products.create_draft(bank_admin, terms())
    db.session.commit()
    other_bank = db.session.get(User, factory.user(OrgKind.BANK).user_id)
    with pytest.raises(PermissionRefused):
        products.publish(other_bank, product)
    officer = db.session.get(
        User, factory.user(OrgKind.BANK, Role.OFFICER, org_id=bank_admin.organization_id).user_id
    )
    with pytest.raises(PermissionRefused):
        products.create_draft(officer, terms())
    enterprise_user = db.session.get(User, factory.enterprise().user_id)
    with pytest.raises(PermissionRefused):
        products.create_draft(enterprise_user, terms())


def test_supermarket_filters(bank_admin):
    a = products.create_draft(bank_admin, terms(name="A", pool_participation=True))
    b = products.create_draft(
        bank_admin,
        terms(
            name="B",
            product_type=ProductType.CREDIT,
            amount_min=Decimal("10000"),
            amount_max=Decimal("200000"),
            term_max_months=12,
        ),
    )
    products.create_draft(bank_admin, terms(name="draft only"))
    products.publish(bank_admin, a)
    products.publish(bank_admin, b)
    names = lambda f: [p.name for p in products.published(f)]  # noqa: E731
    assert names(products.Filters()) == ["A", "B"]
    assert names(products.Filters(product_type="credit")) == ["B"]
    assert names(products.Filters(amount=Decimal("2500000"))) == ["A"]
    assert names(products.Filters(term_months=24)) == ["A"]
    assert names(products.Filters(pool_only=True)) == ["A"]


def test_one_banks_published_products(bank_admin, factory):
    """``published_by`` (the prospect list's) lists what the supermarket filtered by bank
    lists, in its order: published only, this bank's only, cheapest first."""
    other = db.session.get(User, factory.user(OrgKind.BANK).user_id)
    dear = products.create_draft(bank_admin, terms(name="dear", rate_min=Decimal("4.10")))
    cheap = products.create_draft(bank_admin, terms(name="cheap", rate_min=Decimal("3.10")))
    retired = products.create_draft(bank_admin, terms(name="retired"))
    products.create_draft(bank_admin, terms(name="draft"))
    theirs = products.create_draft(other, terms(name="theirs"))
    for product in (dear, cheap, retired):
        products.publish(bank_admin, product)
    products.publish(other, theirs)
    products.retire(bank_admin, retired)
    mine = products.published_by(bank_admin.organization_id)
    assert [p.name for p in mine] == ["cheap", "dear"]
    assert mine == products.published(products.Filters(bank_org_id=bank_admin.organization_id))
    assert [p.name for p in products.published_by(other.organization_id)] == ["theirs"]
