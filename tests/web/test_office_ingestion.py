"""The office uploads CSV batches and reads every rejected row; no one else may."""

from __future__ import annotations

import io
import re

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.services import audit, authorization, workdays
from models import AuthorizationKind, Enterprise, OrgKind, Role, User
from models.ingestion import IngestionBatch, RejectedRow
from models.records import TaxRecord
from tests.conftest import csrf_token

HEADER = "uscc,period,tax_type,amount_paid,declared_sales,late_filing,arrears\n"


def _granted_enterprise(app, factory):
    account = factory.enterprise()
    with app.app_context():
        user = db.session.get(User, account.user_id)
        enterprise = db.session.scalar(
            sa.select(Enterprise).where(Enterprise.organization_id == account.organization_id)
        )
        authorization.grant(
            user, enterprise, authorization.GrantRequest(AuthorizationKind.COLLECTION, ("tax",))
        )
        db.session.commit()
        return enterprise.uscc


def _month(months_ago: int) -> str:
    today = workdays.local_date()
    index = today.year * 12 + today.month - 1 - months_ago
    return f"{index // 12}-{index % 12 + 1:02d}"


def _upload(client, content: bytes, source="tax", provider="福州市税务局", filename="tax.csv"):
    return client.post(
        "/office/ingestion",
        data={
            "source": source,
            "provider": provider,
            "file": (io.BytesIO(content), filename),
            "csrf_token": csrf_token(client, "/office/ingestion"),
        },
        content_type="multipart/form-data",
    )


def _counts(app):
    with app.app_context():
        return (
            db.session.scalar(sa.select(sa.func.count()).select_from(IngestionBatch)),
            db.session.scalar(sa.select(sa.func.count()).select_from(TaxRecord)),
        )


def test_officer_uploads_a_csv_and_sees_every_rejected_row(client, app, factory, login_as):
    uscc = _granted_enterprise(app, factory)
    login_as(OrgKind.OFFICE, Role.OFFICER)
    m1, m2 = _month(2), _month(1)
    csv = (
        HEADER
        + f"{uscc},{m1},VAT,1200.50,98000,0,0\n"
        + f"{uscc},{m2},VAT,-5,98000,0,0\n"
        + f'{uscc},{m2},CIT,"=HYPERLINK(""http://evil.example"",""click"")",1,0,0\n'
        + f"{uscc},2999-01,VAT,1,1,0,0\n"
    )
    response = _upload(client, ("\ufeff" + csv).encode("utf-8"))  # Excel's BOM is tolerated
    assert response.status_code == 302
    page = client.get(response.headers["Location"])
    html = page.get_data(as_text=True)
    assert "1 stored, 0 duplicates, 3 rejected" in html
    assert re.search(r'data-testid="accepted">1<', html)
    lines = re.findall(r'<tr data-line="(\d+)" data-code="(\w+)"', html)
    assert lines == [("3", "negative"), ("4", "bad_amount"), ("5", "future_period")]
    assert "Must not be negative." in html and "The period is in the future." in html
    # the formula is shown as inert, escaped text; it was never evaluated or stored
    assert "=HYPERLINK(&#34;http://evil.example&#34;,&#34;click&#34;)" in html
    assert '<a href="http://evil.example"' not in html
    with app.app_context():
        batch = db.session.scalar(sa.select(IngestionBatch))
        assert batch.filename == "tax.csv" and batch.submitted_by_user_id is not None
        assert db.session.scalar(sa.select(TaxRecord.period)) == m1
        assert audit.verify().ok  # the per-enterprise events chain on, Chinese names and all
    listing = client.get("/office/ingestion").get_data(as_text=True)
    assert f'data-batch="{batch.id}"' in listing and "福州市税务局" in listing


def test_uploading_the_same_file_again_changes_nothing(client, app, factory, login_as):
    uscc = _granted_enterprise(app, factory)
    login_as(OrgKind.OFFICE)
    content = (HEADER + f"{uscc},{_month(1)},VAT,1,1,0,0\n").encode()
    first = _upload(client, content)
    again = _upload(client, content)
    assert first.headers["Location"] == again.headers["Location"]
    assert _counts(app) == (1, 1)


def test_crlf_upper_case_header_and_extra_columns_are_fine(client, app, factory, login_as):
    uscc = _granted_enterprise(app, factory)
    login_as(OrgKind.OFFICE)
    header = (
        "USCC, Period ,TAX_TYPE,amount_paid,declared_sales,late_filing,arrears,provider,version"
    )
    content = f"{header}\r\n{uscc},{_month(1)},VAT,1,1,0,0,ignored,9\r\n".encode()
    response = _upload(client, content)
    assert response.status_code == 302
    assert _counts(app) == (1, 1)
    with app.app_context():
        record = db.session.scalar(sa.select(TaxRecord))
        assert (record.version, record.provider) == (1, "福州市税务局")


def test_gbk_file_is_read_and_said_so(client, app, factory, login_as):
    uscc = _granted_enterprise(app, factory)
    login_as(OrgKind.OFFICE)
    content = (
        HEADER.rstrip("\n") + ",备注\n" + f"{uscc},{_month(1)},VAT,1,1,0,0,按时缴纳\n"
    ).encode("gbk")
    response = _upload(client, content)
    assert response.status_code == 302
    assert "The file was read as GBK." in client.get(response.headers["Location"]).get_data(
        as_text=True
    )
    assert _counts(app) == (1, 1)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"uscc,period\nx,y\n", "lacks required columns: tax_type, amount_paid"),
        (b"\xff\xfeu\x00s\x00c\x00c\x00", "UTF-16 or binary"),
        (HEADER.encode() + b"\x81\x30\xff\xff,2026-01\n", "neither UTF-8 nor GBK"),
        (b"   \n", "The file is empty."),
    ],
)
def test_unreadable_files_are_refused_whole(client, app, login_as, content, message):
    login_as(OrgKind.OFFICE)
    response = _upload(client, content)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert _counts(app) == (0, 0)


def test_a_file_over_the_cap_is_refused_with_413(client, app, factory, login_as, monkeypatch):
    uscc = _granted_enterprise(app, factory)
    monkeypatch.setitem(app.config, "INGESTION_MAX_UPLOAD_BYTES", 1024)
    login_as(OrgKind.OFFICE)
    row = f"{uscc},{_month(1)},VAT,1,1,0,0\n"
    response = _upload(client, (HEADER + row * 40).encode())
    assert response.status_code == 413
    assert "larger than 1 KB" in response.get_data(as_text=True)
    assert _counts(app) == (0, 0)


def test_a_formula_as_provider_name_is_refused(client, app, login_as):
    login_as(OrgKind.OFFICE)
    response = _upload(client, HEADER.encode(), provider="=cmd|' /C calc'!A0")
    assert response.status_code == 422
    assert "may not start with" in response.get_data(as_text=True)
    assert _counts(app) == (0, 0)


def test_rejected_rows_are_paginated(client, app, factory, login_as):
    login_as(OrgKind.OFFICE)
    rows = "".join(f"BAD{i},{_month(1)},VAT,1,1,0,0\n" for i in range(130))
    response = _upload(client, (HEADER + rows).encode())
    location = response.headers["Location"]
    first = client.get(location).get_data(as_text=True)
    second = client.get(location + "?page=2").get_data(as_text=True)
    assert first.count("<tr data-line=") == 100 and second.count("<tr data-line=") == 30
    assert "Page 2 of 2" in second
    assert f'href="{location}?page=1" rel="prev"' in second  # the same batch's first page
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(RejectedRow)) == 130


def test_viewer_may_read_but_not_upload(client, app, login_as):
    login_as(OrgKind.OFFICE, Role.VIEWER)
    page = client.get("/office/ingestion")
    assert page.status_code == 200 and 'data-testid="upload-form"' not in page.get_data(
        as_text=True
    )
    assert _upload(client, HEADER.encode()).status_code == 403


@pytest.mark.parametrize("kind", [OrgKind.BANK, OrgKind.ENTERPRISE])
def test_banks_and_enterprises_get_403(client, app, login_as, kind):
    login_as(kind)
    assert client.get("/office/ingestion").status_code == 403
    assert client.get("/office/ingestion/1").status_code == 403
    response = client.post("/office/ingestion", data={"source": "tax"})
    assert response.status_code in (400, 403)
    assert _counts(app) == (0, 0)


def test_unknown_batch_is_404(client, login_as):
    login_as(OrgKind.OFFICE)
    assert client.get("/office/ingestion/999").status_code == 404
