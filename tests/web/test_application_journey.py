"""Apply, get an offer with its APR and total, accept — through the pages of both sides."""

import datetime as dt
import re
from decimal import Decimal

import sqlalchemy as sa

from app.extensions import db
from app.services import products, workdays
from models import ApplicationStatus, LoanApplication, OrgKind, ProductType, RepaymentMethod, User
from tests.conftest import csrf_token, login


def _product(app, factory):
    bank = factory.user(OrgKind.BANK)
    with app.app_context():
        admin = db.session.get(User, bank.user_id)
        product = products.create_draft(
            admin,
            products.ProductTerms(
                name="信用快贷", product_type=ProductType.CREDIT, amount_min=Decimal("50000"),
                amount_max=Decimal("1000000"), term_min_months=3, term_max_months=24,
                rate_min=Decimal("3.5"), rate_max=Decimal("6.5"),
                repayment_method=RepaymentMethod.EQUAL_INSTALLMENT, response_days=5,
            ),
        )  # fmt: skip
        products.publish(admin, product)
        db.session.commit()
        return bank, product.id


def test_apply_offer_accept(app, client, factory):
    bank, product_id = _product(app, factory)
    client.set_cookie("lang", "en")
    login(client, factory.enterprise())
    page = f"/enterprise/products/{product_id}"
    form = {
        "amount_wan": "12",
        "term_months": "12",
        "purpose": "采购原材料",
        "csrf_token": csrf_token(client, page),
    }

    # Without confirming that the bank may see the profile, nothing is sent.
    refused = client.post(f"{page}/apply", data=form)
    assert refused.status_code == 422
    assert "may see your credit profile" in refused.get_data(as_text=True)
    bad = client.post(f"{page}/apply", data={**form, "amount_wan": "1", "confirm_sharing": "y"})
    assert "The amount must be between" in bad.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(LoanApplication)) == 0

    sent = client.post(f"{page}/apply", data={**form, "confirm_sharing": "y"})
    assert sent.status_code == 302
    detail_url = sent.headers["Location"]
    assert "Submitted" in client.get(detail_url).get_data(as_text=True)
    application_id = int(detail_url.rsplit("/", 1)[1])

    officer = app.test_client()
    officer.set_cookie("lang", "en")
    login(officer, bank)
    listing = officer.get("/bank/applications").get_data(as_text=True)
    assert f'data-application="{application_id}"' in listing
    bank_page = f"/bank/applications/{application_id}"
    offer = {
        "amount_wan": "12", "rate": "6", "term_months": "12", "fee": "0",
        "valid_until": (workdays.local_date() + dt.timedelta(days=7)).isoformat(),
        "csrf_token": csrf_token(officer, bank_page),
    }  # fmt: skip
    too_high = officer.post(f"{bank_page}/offer", data={**offer, "rate": "9"})
    assert (
        too_high.status_code == 422
        and "The rate is outside the product&#39;s range." in too_high.get_data(as_text=True)
    )
    assert officer.post(f"{bank_page}/offer", data=offer).status_code == 302

    # 120,000 CNY over 12 months at 6 % a year, equal instalments: 10,327.97 a month, so the
    # total repayable is 123,935.6x; with no fee the APR is the nominal 6.00 %.
    text = " ".join(client.get(detail_url).get_data(as_text=True).split())
    assert re.search(r'data-testid="total">123,935\.\d\d<', text)
    assert 'data-testid="apr">6.00%<' in text
    accepted = client.post(
        f"{detail_url}/accept", data={"csrf_token": csrf_token(client, detail_url)}
    )
    assert accepted.status_code == 302
    with app.app_context():
        assert db.session.get(LoanApplication, application_id).status is ApplicationStatus.ACCEPTED

    # The bank disburses; the loan appears with its outstanding principal, then a repayment.
    token = csrf_token(officer, bank_page)
    future = officer.post(
        f"{bank_page}/disburse", data={"disbursed_on": "2999-01-01", "csrf_token": token}
    )
    assert future.status_code == 422 and "cannot be in the future" in future.get_data(as_text=True)
    today = workdays.local_date().isoformat()
    assert (
        officer.post(
            f"{bank_page}/disburse", data={"disbursed_on": today, "csrf_token": token}
        ).status_code
        == 302
    )
    loans_page = officer.get("/bank/loans").get_data(as_text=True)
    assert 'data-testid="outstanding">120,000.00<' in loans_page
    loan_id = re.search(r'data-loan="(\d+)"', loans_page).group(1)
    officer.post(
        f"/bank/loans/{loan_id}/repayment",
        data={"amount": "20000", "occurred_on": today, "csrf_token": token},
    )
    assert 'data-testid="outstanding">100,000.00<' in officer.get("/bank/loans").get_data(
        as_text=True
    )
    with app.app_context():
        assert db.session.get(LoanApplication, application_id).status is ApplicationStatus.DISBURSED


def test_a_bank_sees_only_applications_addressed_to_it(app, client, factory):
    _bank, product_id = _product(app, factory)
    sme = app.test_client()
    login(sme, factory.enterprise())
    page = f"/enterprise/products/{product_id}"
    form = {
        "amount_wan": "12",
        "term_months": "12",
        "purpose": "x",
        "confirm_sharing": "y",
        "csrf_token": csrf_token(sme, page),
    }
    application_id = int(sme.post(f"{page}/apply", data=form).headers["Location"].rsplit("/", 1)[1])
    login(client, factory.user(OrgKind.BANK))
    assert f'data-application="{application_id}"' not in client.get("/bank/applications").get_data(
        as_text=True
    )
    assert client.get(f"/bank/applications/{application_id}").status_code == 404


def test_product_page_title_is_plain_and_the_apply_form_appears_once(app, client, factory):
    _bank, product_id = _product(app, factory)
    client.set_cookie("lang", "en")
    login(client, factory.enterprise())
    html = client.get(f"/enterprise/products/{product_id}").get_data(as_text=True)
    assert re.search(r"<title>信用快贷 · Xinyidai</title>", html)
    assert html.count('data-testid="apply"') == 1
    assert "for 180 days to review this application" in html
