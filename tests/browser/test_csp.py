"""Chromium loads the main pages of every side under the strict Content-Security-Policy and
reports no violation: no inline script or style, no eval (htmx configured for it)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from app.extensions import db
from models import OrgKind
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.browser

# Records every violation the page reports; added before any script of the page runs.
LISTEN = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || '') + ' ' + (e.sourceFile || '')
    + ':' + e.lineNumber);
});
"""

PAGES = {
    OrgKind.ENTERPRISE: [
        "/enterprise/",
        "/enterprise/authorizations",
        "/enterprise/authorizations/new",
        "/enterprise/products",
        "/enterprise/profile",
        "/enterprise/applications",
        "/enterprise/needs",
        "/enterprise/data-use",
        "/auth/password",
        "/auth/2fa/setup",
    ],
    OrgKind.BANK: [
        "/bank/",
        "/bank/prospects",
        "/bank/applications",
        "/bank/loans",
        "/bank/needs",
        "/bank/claims",
        "/bank/products",
        "/bank/products/new",
        "/bank/users",
        "/auth/2fa/setup",
    ],
    OrgKind.OFFICE: [
        "/office/",
        "/office/dashboard",
        "/office/banks",
        "/office/models",
        "/office/models/drift",
        "/office/pool",
        "/office/audit",
        "/office/providers",
        "/auth/2fa/setup",
    ],
}


def _violations(page: Page, console: list[str]) -> list[str]:
    found = list(page.evaluate("window.__csp || []"))
    found += [m for m in console if "Content Security Policy" in m or "Refused to" in m]
    return found


@pytest.mark.parametrize("kind", list(PAGES), ids=lambda k: k.value)
def test_main_pages_report_no_csp_violation(page: Page, live_server: str, app, factory, kind):
    with app.app_context():
        account = factory.user(kind)
        db.session.remove()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.add_init_script(LISTEN)

    page.goto(f"{live_server}/auth/login")
    expect(page.locator("#email")).to_be_visible()
    page.goto(f"{live_server}/auth/register")  # the htmx check-as-you-type form
    page.fill("#uscc", "91350100M000100Y4")
    page.wait_for_timeout(600)
    page.goto(f"{live_server}/auth/login")
    page.fill("#email", account.email)
    page.fill("#password", TEST_PASSWORD)
    page.locator("form button[type=submit]").last.click()
    page.wait_for_load_state("networkidle")

    problems: dict[str, list[str]] = {}
    for path in PAGES[kind]:
        response = page.goto(f"{live_server}{path}")
        assert response is not None and response.status < 400, (path, response and response.status)
        header = response.headers.get("content-security-policy", "")
        assert "script-src 'self'" in header and "unsafe-inline" not in header
        page.wait_for_load_state("networkidle")
        found = _violations(page, console)
        if found:
            problems[path] = found
        console.clear()
    assert problems == {}
