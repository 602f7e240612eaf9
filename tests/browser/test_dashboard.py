"""The office opens the dashboard, filters it, drills into a number and downloads XLSX."""

import re

import openpyxl
import pytest
from playwright.sync_api import Page, expect

from app.extensions import db
from tests.browser.conftest import ARTIFACTS
from tests.conftest import TEST_PASSWORD
from tests.services.test_dashboard import build_world

pytestmark = pytest.mark.browser


def test_office_filters_drills_down_and_downloads(page: Page, live_server: str, app, factory):
    with app.app_context():
        office, _banks = build_world(factory)
        email = office.email
        db.session.remove()
    page.goto(f"{live_server}/auth/login")
    page.fill("#email", email)
    page.fill("#password", TEST_PASSWORD)
    page.locator("form button[type=submit]").last.click()
    page.get_by_role("link", name="数据看板").click()
    expect(page.locator("html")).to_have_attribute("data-charts", "drawn")  # Chart.js ran
    page.fill("input[name=start]", "2020-01-01")
    page.get_by_test_id("apply-filters").click()
    expect(page).to_have_url(re.compile(r"start=2020-01-01"))
    total = int(page.get_by_test_id("loan-count").inner_text())
    page.fill("input[name=region]", "3501")
    page.get_by_test_id("apply-filters").click()
    fuzhou = int(page.get_by_test_id("loan-count").inner_text())
    assert 0 < fuzhou < total
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "office-dashboard.png"), full_page=True)

    page.get_by_test_id("loan-amount").click()
    expect(page.get_by_test_id("drill-count")).to_have_text(str(fuzhou))
    expect(page.get_by_test_id("drill-loans").locator("tbody tr")).to_have_count(fuzhou)

    with page.expect_download() as download_info:
        page.get_by_test_id("drill-xlsx").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".xlsx")
    with open(download.path(), "rb") as fh:  # a temporary name without the .xlsx suffix
        book = openpyxl.load_workbook(fh)
    assert book.worksheets[0].max_row == 1 + fuzhou  # the header and one row per loan
