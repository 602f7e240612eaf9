"""The enterprise's authorization wizard, consent ledger, receipt and data-use log."""

import hashlib
import json
import re

import sqlalchemy as sa

from app.extensions import db
from models import AuditEvent, Authorization, OrgKind, Role
from tests.conftest import csrf_token, login


def grant(client, **fields):
    data = {
        "kind": "sharing",
        "scopes": ["tax", "social_insurance"],
        "grantee": "all",
        "data_months": "24",
        "valid_days": "365",
        "data_life_days": "365",
        "fetch_frequency": "monthly",
        "confirm": "y",
        **fields,
        "csrf_token": csrf_token(client, "/enterprise/authorizations/new"),
    }
    return client.post("/enterprise/authorizations/new", data=data)


def test_wizard_grants_and_the_ledger_shows_it(client, app, factory, login_as):
    bank = factory.organization(OrgKind.BANK, "丙银行")
    login_as(OrgKind.ENTERPRISE)
    page = client.get("/enterprise/authorizations/new").get_data(as_text=True)
    assert "丙银行" in page and "The enterprise voluntarily authorizes" in page
    response = grant(client, grantee=str(bank), include_records="y")
    assert response.status_code == 302
    ledger = client.get("/enterprise/authorizations").get_data(as_text=True)
    assert "丙银行" in ledger and "profile and detail records" in ledger
    assert re.search(r'data-testid="status">Active<', ledger)
    with app.app_context():
        grant_row = db.session.scalar(sa.select(Authorization))
        assert grant_row.grantee_org_id == bank and grant_row.include_records
        assert grant_row.scope_list == ["social_insurance", "tax"]


def test_wizard_errors_are_next_to_the_field_and_nothing_is_written(client, app, login_as):
    login_as(OrgKind.ENTERPRISE)
    response = grant(client, scopes=[], confirm="")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Choose at least one kind of data." in html
    assert "Please confirm to continue." in html
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Authorization)) == 0


def test_preview_says_in_plain_words_who_sees_what(client, factory, login_as):
    bank = factory.organization(OrgKind.BANK, "丁银行")
    login_as(OrgKind.ENTERPRISE)
    token = csrf_token(client, "/enterprise/authorizations/new")
    response = client.post(
        "/enterprise/authorizations/preview",
        data={
            "kind": "sharing",
            "scopes": ["tax"],
            "grantee": str(bank),
            "valid_days": "90",
            "data_life_days": "90",
            "data_months": "12",
        },
        headers={"HX-Request": "true", "X-CSRFToken": token},
    )
    text = " ".join(response.get_data(as_text=True).split())
    assert "丁银行 will see your credit profile built from your Tax data" in text
    assert "for 90 days" in text


def test_revoke_is_one_click_and_shows_as_revoked(client, app, login_as):
    login_as(OrgKind.ENTERPRISE)
    grant(client)
    with app.app_context():
        public_id = db.session.scalar(sa.select(Authorization.public_id))
    response = client.post(
        f"/enterprise/authorizations/{public_id}/revoke",
        data={"csrf_token": csrf_token(client, "/enterprise/authorizations")},
    )
    assert response.status_code == 302
    ledger = client.get("/enterprise/authorizations").get_data(as_text=True)
    assert re.search(r'data-testid="status">Revoked<', ledger)
    log = client.get("/enterprise/data-use").get_data(as_text=True)
    assert "Revoked an authorization" in log and "Granted an authorization" in log


def test_receipt_download_with_a_hash_the_enterprise_can_check(client, app, login_as):
    login_as(OrgKind.ENTERPRISE)
    grant(client)
    with app.app_context():
        public_id = db.session.scalar(sa.select(Authorization.public_id))
    response = client.get(f"/enterprise/authorizations/{public_id}/receipt.json")
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    receipt = json.loads(response.get_data(as_text=True))
    body = {k: v for k, v in receipt.items() if k != "receipt_hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hashlib.sha256(canonical.encode()).hexdigest() == receipt["receipt_hash"]
    assert receipt["grantee"] == {"type": "all_banks"}


def test_another_enterprise_cannot_touch_my_authorization(client, app, factory, login_as):
    login_as(OrgKind.ENTERPRISE)
    grant(client)
    with app.app_context():
        public_id = db.session.scalar(sa.select(Authorization.public_id))
    intruder = app.test_client()
    login(intruder, factory.enterprise())
    assert intruder.get(f"/enterprise/authorizations/{public_id}/receipt.json").status_code == 404
    token = csrf_token(intruder, "/enterprise/authorizations")
    assert (
        intruder.post(
            f"/enterprise/authorizations/{public_id}/revoke", data={"csrf_token": token}
        ).status_code
        == 404
    )
    with app.app_context():
        assert db.session.scalar(sa.select(Authorization.revoked_at)) is None


def test_a_viewer_cannot_grant(client, app, login_as):
    login_as(OrgKind.ENTERPRISE, Role.VIEWER)
    response = grant(client)
    assert response.status_code == 403
    assert "Viewers may not grant" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 0


def test_banks_cannot_open_the_consent_pages(client, login_as):
    login_as(OrgKind.BANK)
    assert client.get("/enterprise/authorizations").status_code == 403


def test_post_loan_monitoring_needs_an_active_loan_from_that_bank(client, app, factory, login_as):
    bank = factory.organization(OrgKind.BANK, "监测银行")
    login_as(OrgKind.ENTERPRISE)
    response = grant(client, grantee=str(bank), purpose="post_loan_monitoring")
    assert response.status_code == 422
    assert (
        "Post-loan monitoring is for one bank that has an active loan to you."
        in response.get_data(as_text=True)
    )
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Authorization)) == 0


def test_the_data_use_log_shows_every_use_a_page_at_a_time(client, app, login_as):
    """However many uses, none is out of the enterprise's sight: 100 a page, newest first."""
    from app.services import audit
    from models import Enterprise, User

    account = login_as(OrgKind.ENTERPRISE)
    with app.app_context():
        user = db.session.get(User, account.user_id)
        enterprise_id = db.session.scalar(
            sa.select(Enterprise.id).where(Enterprise.organization_id == user.organization_id)
        )
        for i in range(230):
            audit.record("profile.view", actor=None, enterprise_id=enterprise_id, object_id=i)
        db.session.commit()
        seqs = db.session.scalars(
            sa.select(AuditEvent.seq)
            .where(AuditEvent.enterprise_id == enterprise_id)
            .order_by(AuditEvent.seq.desc())
        ).all()
    pages = [client.get(f"/enterprise/data-use?page={n}").get_data(as_text=True) for n in (1, 2, 3)]
    shown = [[int(s) for s in re.findall(r'data-seq="(\d+)"', page)] for page in pages]
    assert [len(s) for s in shown] == [100, 100, len(seqs) - 200]
    assert [s for page in shown for s in page] == list(seqs), "every use, newest first"
    assert 'rel="next"' in pages[0] and 'rel="prev"' in pages[2] and 'rel="next"' not in pages[2]
