"""An enterprise grants a bank access in the wizard, sees it in its ledger and revokes it."""

import re

import pytest
from playwright.sync_api import Page, expect

from models import OrgKind
from tests.browser.conftest import ARTIFACTS

pytestmark = pytest.mark.browser


def log_in(page: Page, live_server: str, account) -> None:
    page.goto(f"{live_server}/auth/login")
    page.fill("#email", account.email)
    page.fill("#password", account.password)
    page.locator("form button[type=submit]").last.click()


def test_grant_sharing_then_revoke(page: Page, live_server: str, factory):
    factory.organization(OrgKind.BANK, "浏览器银行")
    log_in(page, live_server, factory.enterprise())
    expect(page).to_have_url(re.compile(r"/enterprise/$"))

    page.get_by_role("link", name="数据授权").click()
    expect(page.get_by_test_id("consent-ledger")).to_contain_text("您尚未授权任何事项")
    page.get_by_role("button", name="新建授权").click()

    page.check("input[name=kind][value=sharing]")
    page.check("input[name=scopes][value=tax]")
    page.select_option("#grantee", label="浏览器银行")
    # The plain-words summary follows the choices (htmx).
    expect(page.get_by_test_id("grant-summary")).to_contain_text("浏览器银行 可在 365 天内查看")
    page.select_option("#valid_days", "90")
    expect(page.get_by_test_id("grant-summary")).to_contain_text("90 天内")
    page.check("#confirm")
    page.get_by_role("button", name="确认授权").click()

    expect(page.locator(".flash-success")).to_contain_text("授权成功")
    row = page.get_by_test_id("consent-ledger").locator("tbody tr").first
    expect(row).to_contain_text("浏览器银行")
    expect(row.get_by_test_id("status")).to_have_text("正常")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "consent-ledger.png"), full_page=True)

    row.get_by_test_id("revoke").click()
    expect(page.locator(".flash-success")).to_contain_text("授权已撤销")
    expect(
        page.get_by_test_id("consent-ledger").locator("tbody tr").first.get_by_test_id("status")
    ).to_have_text("已撤销")

    page.get_by_role("link", name="谁使用了我的数据").click()
    expect(page.get_by_test_id("data-use")).to_contain_text("撤销了一项授权")
    expect(page.get_by_test_id("data-use")).to_contain_text("授予了一项授权")


def test_grant_collection_see_progress_and_badges_then_revoke(
    page: Page, live_server: str, factory
):
    log_in(page, live_server, factory.enterprise())
    page.goto(f"{live_server}/enterprise/authorizations/new")
    page.check("input[name=kind][value=collection]")
    page.check("input[name=scopes][value=tax]")
    page.check("input[name=scopes][value=social_insurance]")
    expect(page.get_by_test_id("grant-summary")).to_contain_text("平台将在 365 天内")
    page.check("#confirm")
    page.get_by_role("button", name="确认授权").click()

    # The collection job's progress (polled with htmx) and, per source, the coverage badge.
    progress = page.get_by_test_id("job-progress")
    expect(progress).to_have_attribute("data-status", "succeeded")
    expect(progress.locator("li[data-scope=tax]")).to_contain_text("已收到")
    coverage = page.get_by_test_id("coverage")
    expect(coverage.locator("[data-scope=tax]")).to_contain_text("个月")
    expect(coverage.locator("[data-scope=utilities]")).to_contain_text("无数据")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "collection-progress.png"), full_page=True)

    ledger_row = page.get_by_test_id("consent-ledger").locator("tbody tr").first
    expect(ledger_row).to_contain_text("采集")
    ledger_row.get_by_test_id("revoke").click()
    expect(
        page.get_by_test_id("consent-ledger").locator("tbody tr").first.get_by_test_id("status")
    ).to_have_text("已撤销")
    page.get_by_role("link", name="谁使用了我的数据").click()
    expect(page.get_by_test_id("data-use")).to_contain_text("从数据提供单位采集了记录")
