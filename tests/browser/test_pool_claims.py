"""The office opens the pool, reviews a bank's claim and approves it; the pool pays."""

import re
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from app.extensions import db
from app.services import loans
from app.services import pool as pool_service
from tests.conftest import TEST_PASSWORD
from tests.services.pool_support import TODAY, make_loan, make_pool, make_world

pytestmark = pytest.mark.browser


def test_office_approves_a_claim(page: Page, live_server: str, app, factory):
    with app.app_context():
        world = make_world(factory)
        pool = make_pool(Decimal("1000000"))
        loan = make_loan(world.enterprise.id, world.product, Decimal("300000"))
        pool_service.reserve(None, loan, pool=pool)
        loans.record_default(world.bank, loan, TODAY)
        claim = pool_service.file_claim(world.bank, loan, "三次催收无果，已向法院起诉。")
        db.session.commit()
        claim_id, office_email = claim.id, world.office.email

    page.goto(f"{live_server}/auth/login")
    page.fill("#email", office_email)
    page.fill("#password", TEST_PASSWORD)
    page.locator("form button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/office/$"))
    page.goto(f"{live_server}/office/pool")
    expect(page.get_by_test_id("balance")).to_have_text("1,000,000.00")
    expect(page.get_by_test_id("exposure")).to_have_text("120,000.00")

    page.goto(f"{live_server}/office/pool/claims")
    page.locator(f'tr[data-claim="{claim_id}"] a').click()
    expect(page.get_by_test_id("amount-claimed")).to_have_text("120,000.00")
    page.get_by_test_id("reject").click()  # without a reason: refused, shown at the field
    expect(page.locator('[data-field="reason"]')).not_to_be_empty()
    page.get_by_test_id("approve").click()
    expect(page.get_by_test_id("claim-status")).to_have_text("已批准并支付")

    page.goto(f"{live_server}/office/pool")
    expect(page.get_by_test_id("balance")).to_have_text("880,000.00")
    expect(page.get_by_test_id("exposure")).to_have_text("0.00")
    expect(page.locator('[data-testid="ledger"] tr[data-kind="payout"]')).to_have_count(1)
