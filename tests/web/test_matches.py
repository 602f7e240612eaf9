"""The enterprise's product supermarket: every product, each rule explained."""

import re
from decimal import Decimal

import sqlalchemy as sa

from app.extensions import db
from app.services import authorization as authz
from app.services import products
from app.services.authorization import GrantRequest
from models import AuthorizationKind, Enterprise, OrgKind, ProductType, RepaymentMethod, User
from tests.conftest import login


def _product(bank_user, **rules):
    terms = products.ProductTerms(
        name=rules.pop("name"),
        product_type=ProductType.CREDIT,
        amount_min=Decimal("100000"),
        amount_max=Decimal("2000000"),
        term_min_months=6,
        term_max_months=24,
        rate_min=Decimal("3.5"),
        rate_max=Decimal("6.5"),
        repayment_method=RepaymentMethod.EQUAL_INSTALLMENT,
        response_days=5,
        **rules,
    )
    product = products.create_draft(bank_user, terms)
    products.publish(bank_user, product)
    return product


def test_supermarket_explains_every_rule(app, client, factory):
    sme = factory.enterprise()  # C13, Fuzhou 350102, small, founded 2018
    with app.app_context():
        bank_user = db.session.get(User, factory.user(OrgKind.BANK).user_id)
        _product(
            bank_user, name="福建小微贷", regions_allowed=("35",), size_classes=("micro", "small")
        )
        _product(bank_user, name="税易贷", required_scopes=("tax",))
        _product(bank_user, name="深圳专享", regions_allowed=("4403",), min_grade="BBB")
        db.session.commit()
    client.set_cookie("lang", "en")
    login(client, sme)
    html = client.get("/enterprise/products").get_data(as_text=True)
    assert "You qualify for 1 of 3 products." in " ".join(html.split())
    order = re.findall(r"<strong>(福建小微贷|税易贷|深圳专享)</strong>", html)
    assert order == ["福建小微贷", "税易贷", "深圳专享"]  # eligible, near miss, the rest
    text = " ".join(html.split())
    assert "Needs authorized data: Tax; yours: none." in text
    assert "Authorize collection of Tax data." in text
    assert "Needs grade BBB or better; yours: no credit profile yet." in text
    assert "Needs registered in 4403; yours: 350102." in text

    # Authorizing tax collection makes the near miss eligible.
    with app.app_context():
        user = db.session.get(User, sme.user_id)
        enterprise = db.session.scalar(
            sa.select(Enterprise).where(Enterprise.organization_id == sme.organization_id)
        )
        authz.grant(
            user, enterprise, GrantRequest(kind=AuthorizationKind.COLLECTION, scopes=("tax",))
        )
        db.session.commit()
    html = client.get("/enterprise/products").get_data(as_text=True)
    assert "You qualify for 2 of 3 products." in " ".join(html.split())


def test_filters_and_product_detail(app, client, factory):
    sme = factory.enterprise()
    with app.app_context():
        bank_user = db.session.get(User, factory.user(OrgKind.BANK).user_id)
        product = _product(bank_user, name="一年期", min_years_operating=Decimal("20"))
        _product(bank_user, name="池贷", pool_participation=True)
        db.session.commit()
        product_id = product.id
    client.set_cookie("lang", "en")
    login(client, sme)
    html = client.get("/enterprise/products", query_string={"pool": "1"}).get_data(as_text=True)
    assert "池贷" in html and "一年期" not in html
    partial = client.get(
        "/enterprise/products", query_string={"amount": "5000"}, headers={"HX-Request": "true"}
    )
    assert "<html" not in partial.get_data(as_text=True)
    assert "No published product matches these filters." in partial.get_data(as_text=True)
    detail = client.get(f"/enterprise/products/{product_id}").get_data(as_text=True)
    assert 'data-rule="years_operating" data-passed="no"' in detail
    assert "at least 20.0 years in business" in detail
    assert client.get("/enterprise/products/999999").status_code == 404
