"""The whole loan journey in a real browser: the enterprise authorizes collection, sees its
profile and matches, applies; the bank reviews and offers; the enterprise compares and
accepts; the bank disburses — with the notifications each side gets on the way."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from app.extensions import db
from app.services import products, workdays
from models import OrgKind, ProductType, RepaymentMethod, User
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_consent_journey import log_in
from tests.services.test_profiles_support import (
    approved_version_id_fixture,  # noqa: F401  (fixture)
    trained_model_dir_fixture,  # noqa: F401  (fixture)
)

pytestmark = pytest.mark.browser


def _log_out(page: Page) -> None:
    page.get_by_role("button", name="退出").click()


def test_grant_profile_match_apply_offer_accept_disburse(
    page: Page, live_server: str, factory, app, approved_version_id
):
    bank = factory.user(OrgKind.BANK)
    with app.app_context():
        admin = db.session.get(User, bank.user_id)
        product = products.create_draft(
            admin,
            products.ProductTerms(
                name="闽江信用快贷", product_type=ProductType.CREDIT, amount_min=Decimal("100000"),
                amount_max=Decimal("2000000"), term_min_months=6, term_max_months=36,
                rate_min=Decimal("3.8"), rate_max=Decimal("6.0"),
                repayment_method=RepaymentMethod.EQUAL_INSTALLMENT, response_days=3,
                required_scopes=("tax",),
            ),
        )  # fmt: skip
        products.publish(admin, product)
        db.session.commit()
    sme = factory.enterprise()

    # 1. The enterprise authorizes collection of its data; the job gathers it.
    log_in(page, live_server, sme)
    page.goto(f"{live_server}/enterprise/authorizations/new")
    page.check("input[name=kind][value=collection]")
    for scope in ("tax", "social_insurance", "utilities", "provident_fund"):
        page.check(f"input[name=scopes][value={scope}]")
    page.check("#confirm")
    page.get_by_role("button", name="确认授权").click()
    expect(page.get_by_test_id("job-progress")).to_have_attribute("data-status", "succeeded")

    # 2. Its credit profile has a grade from the approved model.
    page.get_by_role("link", name="信用画像").click()
    expect(page.get_by_test_id("grade")).to_have_text(re.compile(r"^[A-D]"))
    expect(page.get_by_test_id("reasons")).to_be_visible()

    # 3. The product supermarket explains the match; the enterprise applies.
    page.get_by_role("link", name="贷款", exact=True).click()
    page.get_by_role("link", name="闽江信用快贷").first.click()
    page.fill("input[name=amount_wan]", "50")
    page.fill("input[name=term_months]", "12")
    page.fill("input[name=purpose]", "采购原材料")
    page.get_by_role("button", name="提交申请").click()
    expect(page.locator("[data-field=confirm_sharing]")).not_to_be_empty()  # consent first
    page.check("input[name=confirm_sharing]")
    page.get_by_role("button", name="提交申请").click()
    expect(page.get_by_test_id("status")).to_have_text("已提交")
    application_url = page.url
    _log_out(page)

    # 4. The bank hears of it, reviews and makes an offer.
    log_in(page, live_server, bank)
    expect(page.get_by_test_id("unread-count")).to_have_text("1")
    page.get_by_test_id("notifications-link").click()
    page.get_by_test_id("notifications").get_by_role("link").first.click()
    expect(page.get_by_test_id("status")).to_have_text("已提交")
    page.get_by_test_id("review").click()
    expect(page.get_by_test_id("status")).to_have_text("审查中")
    page.fill("input[name=amount_wan]", "50")
    page.fill("input[name=rate]", "4.35")
    page.fill("input[name=fee]", "500")
    page.fill(
        "input[name=valid_until]", (workdays.local_date() + dt.timedelta(days=10)).isoformat()
    )
    page.get_by_test_id("offer").click()
    expect(page.get_by_test_id("status")).to_have_text("已报价")
    _log_out(page)

    # 5. The enterprise sees the offer with its APR among its offers and accepts it.
    log_in(page, live_server, sme)
    expect(page.get_by_test_id("unread-count")).to_have_text("2")  # review started, offer
    page.get_by_role("link", name="贷款申请", exact=True).click()
    expect(page.get_by_test_id("offers")).to_contain_text("闽江信用快贷")
    apr = page.get_by_test_id("offer-apr").first.inner_text()
    assert float(apr.rstrip("%")) > 4.35  # the fee counts
    page.goto(application_url)
    expect(page.get_by_test_id("apr")).to_have_text(apr)
    page.get_by_test_id("accept").click()
    expect(page.get_by_test_id("status")).to_have_text("已接受报价")
    _log_out(page)

    # 6. The bank disburses; the loan appears among its loans.
    log_in(page, live_server, bank)
    page.goto(application_url.replace("/enterprise/", "/bank/"))
    page.fill("input[name=disbursed_on]", workdays.local_date().isoformat())
    page.get_by_role("button", name="登记放款").click()
    expect(page.locator(".flash-success")).to_be_visible()
    expect(page.locator("main table")).to_contain_text(sme_name(app, sme))
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "loan-journey-disbursed.png"), full_page=True)
    _log_out(page)

    log_in(page, live_server, sme)
    page.goto(application_url)
    expect(page.get_by_test_id("status")).to_have_text("已放款")


def sme_name(app, account) -> str:
    with app.app_context():
        return db.session.get(User, account.user_id).organization.name
