"""Objections and credit repair over HTTP: the enterprise files and follows, the office
marks and decides, the bank sees the markers and no repaired record; nobody sees another's."""

from __future__ import annotations

import datetime as dt
import io
import re

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app.services import authorization as authz
from app.services import objections, profiles
from app.services.authorization import GrantRequest
from models import (
    AuthorizationKind,
    Objection,
    ObjectionEvidence,
    ObjectionStatus,
    Organization,
    OrgKind,
    Role,
    User,
    db,
)
from models.records import PublicCreditRecord, SocialInsuranceRecord
from tests.conftest import Account, Factory, csrf_token, login
from tests.services.test_profiles_support import add_records, enterprise_by_user, grant_collection

PDF = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n%%EOF\n"


def _enterprise(app: Flask, factory: Factory) -> tuple[Account, int, int]:
    """An enterprise with records and a profile; returns its login, id and the id of its
    latest social-insurance record (in arrears)."""
    account = factory.enterprise()
    with app.app_context():
        grant_collection(account.user_id, ("social_insurance", "tax"))
        enterprise = enterprise_by_user(account.user_id)
        add_records(enterprise, arrears_months=1)
        profiles.compute_profile(enterprise)
        db.session.commit()
        record_id = db.session.scalars(
            sa.select(SocialInsuranceRecord.id)
            .where(SocialInsuranceRecord.enterprise_id == enterprise.id)
            .order_by(SocialInsuranceRecord.month.desc())
        ).first()
        return account, enterprise.id, record_id


def _file(
    client: FlaskClient, record_id: int, files: list[tuple[bytes, str]] | None = None
) -> object:
    token = csrf_token(client, "/enterprise/records")
    data = {
        "csrf_token": token,
        "table": "social_insurance",
        "record": str(record_id),
        "text": "该月社保已足额缴纳，附银行回单。",
        "evidence": [(io.BytesIO(b), name) for b, name in (files or [(PDF, "回单.pdf")])],
    }
    return client.post("/enterprise/objections/new", data=data, content_type="multipart/form-data")


def test_enterprise_files_and_the_office_decides(
    app: Flask, client: FlaskClient, factory: Factory
) -> None:
    account, enterprise_id, record_id = _enterprise(app, factory)
    login(client, account)
    records = client.get("/enterprise/records").get_data(as_text=True)
    assert f'data-testid="object-social_insurance-{record_id}"' in records

    response = _file(client, record_id)
    assert response.status_code == 302, response.get_data(as_text=True)[:800]
    detail = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Filed" in detail and "回单.pdf" in detail and "working days left" in detail
    profile = client.get("/enterprise/profile").get_data(as_text=True)
    assert 'data-testid="records-under-objection"' in profile
    assert 'data-testid="under-objection"' in client.get("/enterprise/records").get_data(
        as_text=True
    )
    with app.app_context():
        objection = db.session.scalars(sa.select(Objection)).one()
        evidence = objection.evidence[0]
        objection_id, evidence_id = objection.id, evidence.id
    download = client.get(f"/enterprise/evidence/{evidence_id}")
    assert download.status_code == 200 and download.data == PDF
    assert "attachment" in download.headers["Content-Disposition"]
    download.close()

    office = app.test_client()
    office.set_cookie("lang", "en")
    login(office, factory.user(OrgKind.OFFICE, Role.OFFICER))
    queue = office.get("/office/objections").get_data(as_text=True)
    assert f'data-objection="{objection_id}"' in queue and "测试企业" in queue
    office_download = office.get(f"/office/evidence/{evidence_id}")
    assert office_download.data == PDF
    office_download.close()
    token = csrf_token(office, f"/office/objections/{objection_id}")
    flagged = office.post(
        f"/office/objections/{objection_id}/flag",
        data={"csrf_token": token, "needs_other_unit": "y"},
    )
    assert flagged.status_code == 302
    page = office.get(f"/office/objections/{objection_id}").get_data(as_text=True)
    assert "Marked as under objection" in page and "Another unit must verify" in page

    no_reason = office.post(
        f"/office/objections/{objection_id}/decide",
        data={"csrf_token": token, "decision": "reject", "reason": ""},
    )
    assert no_reason.status_code == 422
    assert "Give the reason for rejecting" in no_reason.get_data(as_text=True)

    upheld = office.post(
        f"/office/objections/{objection_id}/decide",
        data={
            "csrf_token": token, "decision": "uphold", "reason": "经核实",
            "value_insured_headcount": "20", "value_amount_due": "30000.00",
            "value_amount_paid": "30000.00", "value_arrears": "0",
        },
    )  # fmt: skip
    assert upheld.status_code == 302, upheld.get_data(as_text=True)[:800]
    with app.app_context():
        objection = db.session.get(Objection, objection_id)
        assert objection.status is ObjectionStatus.UPHELD
        new = db.session.get(SocialInsuranceRecord, objection.corrected_record_id)
        assert new.version == 2 and str(new.arrears) == "0.00"
        assert db.session.get(SocialInsuranceRecord, record_id).version == 1
        assert profiles.latest_profiles([enterprise_id])[enterprise_id].social_months == 18

    after = client.get("/enterprise/profile").get_data(as_text=True)
    assert 'data-testid="records-under-objection"' not in after
    mine = client.get(f"/enterprise/objections/{objection_id}").get_data(as_text=True)
    assert "Upheld" in mine and "30000.00" in mine


def test_objection_to_the_profile_is_marked_until_rejected(
    app: Flask, client: FlaskClient, factory: Factory
) -> None:
    account, _enterprise_id, _record_id = _enterprise(app, factory)
    login(client, account)
    token = csrf_token(client, "/enterprise/objections/new")
    filed = client.post(
        "/enterprise/objections/new", data={"csrf_token": token, "text": "等级偏低"}
    )
    assert filed.status_code == 302
    assert 'data-testid="profile-under-objection"' in client.get("/enterprise/profile").get_data(
        as_text=True
    )
    with app.app_context():
        objection_id = db.session.scalars(sa.select(Objection.id)).one()
    office = app.test_client()
    office.set_cookie("lang", "en")
    login(office, factory.user(OrgKind.OFFICE, Role.ADMIN))
    office_token = csrf_token(office, f"/office/objections/{objection_id}")
    rejected = office.post(
        f"/office/objections/{objection_id}/decide",
        data={"csrf_token": office_token, "decision": "reject", "reason": "数据无误"},
    )
    assert rejected.status_code == 302
    assert 'data-testid="profile-under-objection"' not in client.get(
        "/enterprise/profile"
    ).get_data(as_text=True)
    assert "数据无误" in client.get(f"/enterprise/objections/{objection_id}").get_data(as_text=True)


def test_bad_evidence_is_refused_with_a_message_and_nothing_stored(
    app: Flask, client: FlaskClient, factory: Factory
) -> None:
    account, _enterprise_id, record_id = _enterprise(app, factory)
    login(client, account)
    response = _file(client, record_id, [(b"GIF89a fake", "scan.pdf")])
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "is not a PDF, PNG or JPEG file" in page and "nothing was stored" in page
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Objection)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ObjectionEvidence)) == 0


def test_another_enterprise_can_neither_object_nor_see(
    app: Flask, client: FlaskClient, factory: Factory
) -> None:
    account, _enterprise_id, record_id = _enterprise(app, factory)
    login(client, account)
    assert _file(client, record_id).status_code == 302
    with app.app_context():
        objection = db.session.scalars(sa.select(Objection)).one()
        objection_id, evidence_id = objection.id, objection.evidence[0].id

    intruder = app.test_client()
    intruder.set_cookie("lang", "en")
    login(intruder, factory.enterprise())
    assert intruder.get(f"/enterprise/objections/{objection_id}").status_code == 404
    assert intruder.get(f"/enterprise/evidence/{evidence_id}").status_code == 404
    assert (
        intruder.get(
            f"/enterprise/objections/new?table=social_insurance&record={record_id}"
        ).status_code
        == 404
    )
    assert _file(intruder, record_id).status_code == 404
    assert f'data-objection="{objection_id}"' not in intruder.get(
        "/enterprise/objections"
    ).get_data(as_text=True)


def test_banks_cannot_reach_objection_pages(client: FlaskClient, login_as) -> None:
    login_as(OrgKind.BANK)
    for path in (
        "/enterprise/objections",
        "/enterprise/records",
        "/office/objections",
        "/office/objections/1",
        "/office/evidence/1",
        "/enterprise/evidence/1",
    ):
        assert client.get(path).status_code == 403, path  # fmt: skip


def test_office_queue_shows_overdue_in_red(
    app: Flask, client: FlaskClient, factory: Factory
) -> None:
    account, _enterprise_id, record_id = _enterprise(app, factory)
    with app.app_context():
        user = db.session.get(User, account.user_id)
        late = objections.file(
            user, text="旧", table="social_insurance", record_id=record_id,
            now=dt.datetime.now(dt.UTC) - dt.timedelta(days=20),
        )  # fmt: skip
        db.session.commit()
        late_id = late.id
    login(client, factory.user(OrgKind.OFFICE, Role.VIEWER))
    page = client.get("/office/objections").get_data(as_text=True)
    row = re.search(rf'<tr data-objection="{late_id}" class="overdue">.*?</tr>', page, re.S)
    assert row and 'class="field-error" data-testid="overdue"' in row.group(0)
    # a viewer sees the queue but no decision forms
    detail = client.get(f"/office/objections/{late_id}").get_data(as_text=True)
    assert 'data-testid="decide-form"' not in detail and "overdue" in detail


def test_repair_through_the_web_and_what_the_bank_sees(
    app: Flask, client: FlaskClient, factory: Factory
) -> None:
    account, enterprise_id, record_id = _enterprise(app, factory)
    bank_account = factory.user(OrgKind.BANK)
    with app.app_context():
        user = db.session.get(User, account.user_id)
        bank = db.session.get(Organization, bank_account.organization_id)
        authz.grant(
            user, enterprise_by_user(account.user_id),
            GrantRequest(kind=AuthorizationKind.SHARING, scopes=("social_insurance",),
                         grantee_org_id=bank.id, include_records=True),
        )  # fmt: skip
        objections.file(user, text="有误", table="social_insurance", record_id=record_id)
        db.session.commit()
        penalty_id = db.session.scalar(
            sa.select(PublicCreditRecord.id).where(PublicCreditRecord.record_id == "P-1")
        )
    banker = app.test_client()
    banker.set_cookie("lang", "en")
    login(banker, bank_account)
    view = banker.get(f"/bank/enterprises/{enterprise_id}").get_data(as_text=True)
    # the disputed social-insurance record's row is marked, and only it
    rows = re.search(r'data-testid="records-social_insurance".*?</article>', view, re.S)
    assert rows and rows.group(0).count('data-testid="under-objection"') == 1
    assert 'data-public-record="P-1"' in view
    assert banker.get("/enterprise/objections").status_code == 403

    login(client, account)
    token = csrf_token(client, "/enterprise/records")
    applied = client.post(
        "/enterprise/repairs/new",
        data={"csrf_token": token, "record": str(penalty_id), "text": "罚款已缴清",
              "evidence": [(io.BytesIO(PDF), "凭证.pdf")]},
        content_type="multipart/form-data",
    )  # fmt: skip
    assert applied.status_code == 302, applied.get_data(as_text=True)[:800]
    repair_id = int(applied.headers["Location"].rsplit("/", 1)[1])

    office = app.test_client()
    office.set_cookie("lang", "en")
    login(office, factory.user(OrgKind.OFFICE, Role.OFFICER))
    assert f'data-repair="{repair_id}"' in office.get("/office/objections").get_data(as_text=True)
    office_token = csrf_token(office, f"/office/repairs/{repair_id}")
    approved = office.post(
        f"/office/repairs/{repair_id}/decide",
        data={"csrf_token": office_token, "decision": "approve"},
    )
    assert approved.status_code == 302
    with app.app_context():
        assert profiles.latest_profiles([enterprise_id])[enterprise_id].public_credit_class == "A"
    page = client.get(f"/enterprise/repairs/{repair_id}").get_data(as_text=True)
    assert "Approved: repaired" in page
    profile_page = client.get("/enterprise/profile").get_data(as_text=True)
    assert 'data-testid="public-credit-class">A<' in profile_page
    view = banker.get(f"/bank/enterprises/{enterprise_id}").get_data(as_text=True)
    assert 'data-public-record="P-1"' not in view
