"""Security headers, session revocation across browsers, re-authentication before sensitive
changes, and the legal representative's masked personal data."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.security import AUTH_AT, CSP
from models import AuditEvent, Enterprise, OrgKind, Role, User
from tests.conftest import TEST_PASSWORD, csrf_token, login

TEMPLATES = Path(__file__).resolve().parents[2] / "app" / "templates"

EXACT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'"
)


# Headers -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/auth/login", "/healthz", "/no-such-page"])
def test_every_response_carries_the_security_headers(client, path):
    response = client.get(path)
    headers = response.headers
    assert headers["Content-Security-Policy"] == EXACT_CSP == CSP
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    assert "unsafe-eval" not in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "camera=()" in headers["Permissions-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    # The test app runs as "testing": no HSTS over plain HTTP.
    assert "Strict-Transport-Security" not in headers


def test_hsts_in_production_mode(make_app):
    production_like = make_app(HSTS=True)
    response = production_like.test_client().get("/auth/login")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=63072000")


def test_pages_behind_a_login_are_not_cached(client, login_as):
    login_as(OrgKind.BANK)
    assert client.get("/bank/").headers["Cache-Control"] == "no-store"


def test_cookies_are_httponly_and_samesite(client, factory):
    login(client, factory.user(OrgKind.BANK))
    cookie = client.get_cookie("xinyidai_session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"


def test_no_template_has_inline_style_script_or_handler():
    offenders = []
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text()
        if re.search(r"\sstyle=", text):
            offenders.append(f"{path.name}: style=")
        if re.search(r"\son[a-z]+=", text):
            offenders.append(f"{path.name}: inline handler")
        for tag in re.findall(r"<script[^>]*>", text):
            if "src=" not in tag and 'type="application/json"' not in tag:
                offenders.append(f"{path.name}: inline script")
        if "hx-on" in text or "js:" in text:
            offenders.append(f"{path.name}: htmx eval")
    assert offenders == []


def test_htmx_is_configured_for_the_csp(client):
    page = client.get("/auth/login").get_data(as_text=True)
    assert '"includeIndicatorStyles": false' in page
    assert '"allowEval": false' in page


# Sessions ------------------------------------------------------------------------------


def test_logout_ends_the_session_in_every_browser_of_that_session_only(app, factory):
    account = factory.user(OrgKind.BANK)
    first, second = app.test_client(), app.test_client()
    login(first, account)
    login(second, account)
    assert first.get("/bank/").status_code == 200
    assert second.get("/bank/").status_code == 200
    first.post("/auth/logout", data={"csrf_token": csrf_token(first, "/bank/")})
    assert first.get("/bank/").status_code == 302  # this browser: logged out
    assert second.get("/bank/").status_code == 200  # the other login goes on


def test_disabling_a_user_ends_their_sessions_in_every_browser(app, factory):
    bank_user = factory.user(OrgKind.BANK)
    office = factory.user(OrgKind.OFFICE)
    browsers = [app.test_client(), app.test_client()]
    for browser in browsers:
        login(browser, bank_user)
        assert browser.get("/bank/").status_code == 200
    admin = app.test_client()
    login(admin, office)
    response = admin.post(
        f"/office/users/{bank_user.user_id}/active/0",
        data={"csrf_token": csrf_token(admin, "/office/")},
    )
    assert response.status_code in (200, 302)
    for browser in browsers:
        response = browser.get("/bank/")
        assert response.status_code == 302
        assert "/auth/login" in response.headers["Location"]


def test_password_change_ends_the_other_browsers_sessions(app, factory):
    account = factory.user(OrgKind.BANK)
    here, there = app.test_client(), app.test_client()
    login(here, account)
    login(there, account)
    response = here.post(
        "/auth/password",
        data={
            "current_password": TEST_PASSWORD,
            "password": "another horse battery",
            "confirm": "another horse battery",
            "csrf_token": csrf_token(here, "/bank/"),
        },
    )
    assert response.status_code == 302
    assert here.get("/bank/").status_code == 200
    assert there.get("/bank/").status_code == 302


# Re-authentication ---------------------------------------------------------------------


def _age_authentication(client, seconds: int = 3600) -> None:
    with client.session_transaction() as sess:
        sess[AUTH_AT] = int(time.time()) - seconds


def test_sensitive_page_asks_to_confirm_the_password_then_comes_back(client, login_as):
    login_as(OrgKind.BANK)
    assert client.get("/auth/password").status_code == 200  # just logged in: recent enough
    _age_authentication(client)
    response = client.get("/auth/password")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/reauth?next=/auth/password")
    page = client.get(response.headers["Location"])
    assert "Confirm it is you" in page.get_data(as_text=True)
    wrong = client.post(
        response.headers["Location"],
        data={"password": "not my password", "csrf_token": csrf_token(client, "/bank/")},
    )
    assert wrong.status_code == 401
    assert "The password is not correct." in wrong.get_data(as_text=True)
    right = client.post(
        response.headers["Location"],
        data={"password": TEST_PASSWORD, "csrf_token": csrf_token(client, "/bank/")},
    )
    assert right.status_code == 302 and right.headers["Location"] == "/auth/password"
    assert client.get("/auth/password").status_code == 200


def test_stale_authentication_blocks_user_management_until_confirmed(client, app, factory):
    admin = factory.user(OrgKind.BANK)
    colleague = factory.user(OrgKind.BANK, Role.OFFICER, org_id=admin.organization_id)
    login(client, admin)
    token = csrf_token(client, "/bank/users")
    _age_authentication(client)
    response = client.post(
        f"/bank/users/{colleague.user_id}/active/0",
        data={"csrf_token": token},
        headers={"Referer": "http://localhost/bank/users"},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/auth/reauth?next=/bank/users"
    with app.app_context():
        assert db.session.get(User, colleague.user_id).is_active  # nothing changed


def test_htmx_request_gets_a_redirect_header_to_confirm(client, login_as):
    login_as(OrgKind.OFFICE)
    token = csrf_token(client, "/office/")
    _age_authentication(client)
    response = client.post(
        "/office/pool/deposit", data={"csrf_token": token}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 204
    assert response.headers["HX-Redirect"].startswith("/auth/reauth")


def test_reauth_refuses_foreign_next_targets(client, login_as):
    login_as(OrgKind.BANK)
    response = client.post(
        "/auth/reauth?next=//evil.example/x",
        data={"password": TEST_PASSWORD, "csrf_token": csrf_token(client, "/bank/")},
    )
    assert response.status_code == 302 and response.headers["Location"] == "/bank/"


# Masked personal data ------------------------------------------------------------------

ID_NUMBER = "11010519491231002X"
PHONE = "13812345678"


def _register_with_contact(client):
    from tests.web.test_auth import register

    response = register(client, legal_rep_id_number=ID_NUMBER, legal_rep_phone="138 1234 5678")
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]


def test_registration_stores_contact_encrypted_and_shows_it_masked(client, app):
    _register_with_contact(client)
    page = client.get("/enterprise/").get_data(as_text=True)
    assert "110***********002X" in page
    assert "138****5678" in page
    assert ID_NUMBER not in page and PHONE not in page
    with app.app_context():
        enterprise = db.session.scalar(sa.select(Enterprise))
        assert enterprise.legal_rep_id_number == ID_NUMBER  # decrypted by the column type
        raw = db.session.execute(
            sa.text("SELECT legal_rep_id_number, legal_rep_phone FROM enterprise")
        ).one()
        assert raw[0].startswith("v1:") and ID_NUMBER not in raw[0]
        assert raw[1].startswith("v1:") and PHONE not in raw[1]


def test_invalid_id_number_is_refused_next_to_its_field(client):
    from tests.web.test_auth import field_error, register

    response = register(client, legal_rep_id_number="110105194912310021")
    assert response.status_code == 422
    assert "check character" in field_error(response.get_data(as_text=True), "legal_rep_id_number")


def test_own_admin_reveals_in_full_and_the_reveal_is_audited(client, app):
    _register_with_contact(client)
    response = client.post(
        "/enterprise/legal-representative/reveal",
        data={"csrf_token": csrf_token(client, "/enterprise/")},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert ID_NUMBER in html and PHONE in html
    with app.app_context():
        events = db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action == "personal_data.reveal")
        ).all()
        assert len(events) == 1


def test_a_viewer_of_the_enterprise_cannot_reveal(client, app, factory):
    viewer = factory.enterprise(role=Role.VIEWER)
    with app.app_context():
        enterprise = db.session.scalar(
            sa.select(Enterprise).where(Enterprise.organization_id == viewer.organization_id)
        )
        enterprise.legal_rep_phone = PHONE
        db.session.commit()
    login(client, viewer)
    page = client.get("/enterprise/").get_data(as_text=True)
    assert "138****5678" in page and 'data-testid="reveal"' not in page
    response = client.post(
        "/enterprise/legal-representative/reveal",
        data={"csrf_token": csrf_token(client, "/enterprise/")},
    )
    assert response.status_code == 403
    assert PHONE not in response.get_data(as_text=True)
