"""A person registers an enterprise, logs in, switches language and sees the landing page."""

import re

import pytest
from playwright.sync_api import Page, expect

from models import OrgKind
from tests.browser.conftest import ARTIFACTS

pytestmark = pytest.mark.browser


def test_register_login_switch_language(page: Page, live_server: str):
    page.goto(f"{live_server}/auth/register")
    expect(page.locator("h1")).to_have_text("企业注册")

    # The USCC is checked while typing (htmx, CSRF token in a header).
    page.fill("#uscc", "91350100m000100y44")
    expect(page.locator("#uscc-help")).to_contain_text("应为 3")
    page.fill("#uscc", "91350100m000100y43")
    expect(page.locator("#uscc-help")).to_have_text("代码有效。")

    page.fill("#name", "福州闽江浏览器测试有限公司")
    page.fill("#legal_representative", "林建华")
    page.fill("#founded_on", "2016-04-01")
    page.fill("#region_code", "350102")
    page.fill("#industry_code", "C13")
    page.fill("#employees", "40")
    page.fill("#annual_revenue_wan", "2500")
    page.fill("#user_name", "林经办")
    page.fill("#email", "owner@browser-test.example.com")
    page.fill("#password", "a long browser passphrase")
    page.fill("#confirm", "a long browser passphrase different")
    page.check("#accept_terms")
    page.click("button[type=submit]")

    # A mistake is shown next to its field and nothing else is lost.
    expect(page.locator("#confirm-help")).to_have_text("两次输入的密码不一致。")
    expect(page.locator("#name")).to_have_value("福州闽江浏览器测试有限公司")
    page.fill("#password", "a long browser passphrase")
    page.fill("#confirm", "a long browser passphrase")
    page.click("button[type=submit]")

    expect(page.get_by_test_id("landing-title")).to_have_text("福州闽江浏览器测试有限公司")
    expect(page.get_by_test_id("size-class")).to_have_text("小型")

    page.get_by_test_id("lang-switch").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_test_id("size-class")).to_have_text("Small")
    expect(page.get_by_role("button", name="Log out")).to_be_visible()

    page.get_by_role("button", name="Log out").click()
    expect(page.locator(".flash-success")).to_have_text("You have logged out.")

    page.goto(f"{live_server}/auth/login")
    page.fill("#email", "owner@browser-test.example.com")
    page.fill("#password", "a long browser passphrase")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/enterprise/$"))
    expect(page.get_by_test_id("landing-title")).to_have_text("福州闽江浏览器测试有限公司")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "enterprise-landing.png"), full_page=True)
    assert (ARTIFACTS / "enterprise-landing.png").stat().st_size > 10_000


def test_bank_user_is_refused_enterprise_pages(page: Page, live_server: str, factory):
    account = factory.user(OrgKind.BANK)
    page.goto(f"{live_server}/auth/login")
    page.fill("#email", account.email)
    page.fill("#password", account.password)
    page.locator("form button[type=submit]").last.click()
    expect(page).to_have_url(re.compile(r"/bank/$"))
    response = page.goto(f"{live_server}/enterprise/")
    assert response is not None and response.status == 403
    expect(page.locator(".error-box h2")).to_contain_text("403")
