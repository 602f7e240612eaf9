"""A bank administrator manages products through the pages."""

import sqlalchemy as sa

from app.extensions import db
from models import LoanProduct, OrgKind, ProductStatus, Role
from tests.conftest import csrf_token

FORM = {
    "name": "科创信用贷",
    "product_type": "credit",
    "description": "",
    "amount_min_wan": "10",
    "amount_max_wan": "300",
    "term_min_months": "6",
    "term_max_months": "36",
    "rate_min": "3.45",
    "rate_max": "6.5",
    "repayment_method": "equal_installment",
    "upfront_fee_pct": "0",
    "response_days": "5",
    "min_grade": "BBB",
    "public_credit_classes": ["A", "B"],
    "min_years_operating": "2",
    "min_annual_sales_wan": "100",
    "min_tax_months": "12",
    "industries_allowed": "C，F51",
    "regions_allowed": "35",
    "size_classes": ["micro", "small"],
    "required_scopes": ["tax"],
}


def post_new(client, **overrides):
    data = {**FORM, **overrides, "csrf_token": csrf_token(client, "/bank/products/new")}
    return client.post("/bank/products/new", data=data)


def test_admin_creates_a_draft_and_publishes_it(client, app, login_as):
    login_as(OrgKind.BANK)
    response = post_new(client)
    assert response.status_code == 302
    with app.app_context():
        product = db.session.scalar(sa.select(LoanProduct))
        assert product.amount_max == 3_000_000
        assert product.industries_allowed == "C,F51"
        assert product.min_annual_sales == 1_000_000
        product_id = product.id
    page = client.get(f"/bank/products/{product_id}").get_data(as_text=True)
    assert "科创信用贷" in page and 'data-testid="publish"' in page
    publish = client.post(
        f"/bank/products/{product_id}/publish",
        data={"csrf_token": csrf_token(client, "/bank/products")},
    )
    assert publish.status_code == 302
    with app.app_context():
        assert db.session.get(LoanProduct, product_id).status is ProductStatus.PUBLISHED
    # Published: the form is read-only and a POST changes nothing.
    token = csrf_token(client, f"/bank/products/{product_id}")
    client.post(f"/bank/products/{product_id}", data={**FORM, "name": "改名", "csrf_token": token})
    with app.app_context():
        assert db.session.get(LoanProduct, product_id).name == "科创信用贷"


def test_contradictory_ranges_are_reported_next_to_the_field(client, app, login_as):
    login_as(OrgKind.BANK)
    response = post_new(client, amount_min_wan="500", amount_max_wan="100")
    assert response.status_code == 422
    assert "The maximum cannot be below the minimum." in response.get_data(as_text=True)
    response = post_new(client, regions_allowed="99")
    assert "Not GB/T 2260 region prefixes" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(LoanProduct)) == 0


def test_officers_see_products_but_cannot_create(client, login_as):
    login_as(OrgKind.BANK, Role.OFFICER)
    assert client.get("/bank/products").status_code == 200
    assert client.get("/bank/products/new").status_code == 403


def test_another_bank_cannot_open_or_publish_my_product(client, app, factory, login_as):
    from tests.conftest import login

    owner = app.test_client()
    login(owner, factory.user(OrgKind.BANK))
    assert post_new(owner).status_code == 302
    with app.app_context():
        product_id = db.session.scalar(sa.select(LoanProduct.id))
    login_as(OrgKind.BANK)
    assert client.get(f"/bank/products/{product_id}").status_code == 404
    response = client.post(
        f"/bank/products/{product_id}/publish",
        data={"csrf_token": csrf_token(client, "/bank/products")},
    )
    assert response.status_code == 404
