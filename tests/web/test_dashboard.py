"""The office dashboard through its pages: figures, drill-down, exports, targets, access."""

import io
import re

import openpyxl
import pytest
import sqlalchemy as sa

from app.extensions import db
from models import AuditEvent, KpiTarget, OrgKind, Role
from tests.conftest import TEST_PASSWORD, Account, csrf_token, login
from tests.services.test_dashboard import build_world


@pytest.fixture
def world(app, factory):
    """(office user id, office organization id); the requests need no outer app context."""
    with app.app_context():
        office, _banks = build_world(factory)
        ids = office.id, office.organization_id, office.email
        db.session.remove()
    return ids


def _office_client(app, world):
    user_id, org_id, email = world
    client = app.test_client()
    client.set_cookie("lang", "en")
    login(client, Account(email, TEST_PASSWORD, user_id, org_id))
    return client


def _number(page: str, testid: str) -> str:
    return re.search(rf'data-testid="{testid}">([^<]+)<', page).group(1).strip()


def test_dashboard_figures_link_to_the_rows_behind_them(app, world):
    client = _office_client(app, world)
    page = client.get("/office/dashboard").get_data(as_text=True)
    count = int(_number(page, "loan-count"))
    assert count >= 3
    assert 'id="chart-data"' in page and "chart.umd.min.js" in page
    drill = client.get("/office/dashboard/loans").get_data(as_text=True)
    assert int(_number(drill, "drill-count")) == count
    first = int(_number(page, "first-count"))
    assert int(_number(client.get("/office/dashboard/loans?first=1").get_data(as_text=True),
                       "drill-count")) == first  # fmt: skip
    submitted = int(_number(page, "submitted"))
    apps = client.get("/office/dashboard/applications?metric=submitted").get_data(as_text=True)
    assert int(_number(apps, "drill-count")) == submitted
    # A breakdown cell leads to exactly its loans.
    link = re.search(r'href="(/office/dashboard/loans\?[^"]*dimension=bank[^"]*)"', page).group(1)
    cell = re.search(
        r'href="/office/dashboard/loans\?[^"]*dimension=bank[^"]*" data-testid="cell-count">(\d+)<',
        page,
    ).group(1)
    linked = client.get(link.replace("&amp;", "&")).get_data(as_text=True)
    assert _number(linked, "drill-count") == cell


def test_filters_narrow_and_bad_ones_say_what(app, world):
    client = _office_client(app, world)
    everything = int(_number(client.get("/office/dashboard?start=2020-01-01").get_data(
        as_text=True), "loan-count"))  # fmt: skip
    fuzhou = int(_number(client.get("/office/dashboard?start=2020-01-01&region=3501").get_data(
        as_text=True), "loan-count"))  # fmt: skip
    assert 0 < fuzhou < everything
    bad = client.get("/office/dashboard?start=yesterday").get_data(as_text=True)
    assert "Dates are written YYYY-MM-DD." in bad
    backwards = client.get("/office/dashboard?start=2026-05-01&end=2026-01-01").get_data(
        as_text=True
    )
    assert "The period ends before it starts." in backwards
    assert client.get("/office/dashboard/applications?metric=nonsense").status_code == 404
    assert client.get("/office/dashboard/loans?dimension=nonsense").status_code == 404


def test_exports_are_files_and_audited(app, world):
    client = _office_client(app, world)
    xlsx = client.get("/office/dashboard/export.xlsx?start=2020-01-01")
    assert xlsx.status_code == 200
    assert xlsx.headers["Content-Disposition"].startswith("attachment;")
    book = openpyxl.load_workbook(io.BytesIO(xlsx.data))
    assert len(book.worksheets) == 9  # summary, six breakdowns, support policies, banks
    summary = {row[0].value: row[1].value for row in book.worksheets[0].iter_rows(min_row=2)}
    page = client.get("/office/dashboard?start=2020-01-01").get_data(as_text=True)
    assert summary["Loans"] == int(_number(page, "loan-count"))
    csv_body = client.get("/office/dashboard/loans.csv?start=2020-01-01").data.decode("utf-8-sig")
    assert csv_body.count("\n") == 1 + int(_number(page, "loan-count"))
    assert client.get("/office/dashboard/export.pdf").status_code == 404
    with app.app_context():
        exported = db.session.scalar(
            sa.select(sa.func.count()).where(AuditEvent.action == "dashboard.export")
        )
        assert exported == 2


def test_targets_are_set_by_office_admins_only(app, world, factory):
    client = _office_client(app, world)
    token = csrf_token(client, "/office/dashboard")
    saved = client.post(
        "/office/dashboard/targets",
        data={"csrf_token": token, "credit_share": "40", "volume_growth": "30"},
    )
    assert saved.status_code == 302
    page = client.get(saved.headers["Location"]).get_data(as_text=True)
    assert "Targets saved." in page and "≥ 40.00%" in page
    refused = client.post(
        "/office/dashboard/targets", data={"csrf_token": token, "credit_share": "abc"}
    )
    assert "Enter a number." in client.get(refused.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(KpiTarget)) == 1

    officer = factory.user(OrgKind.OFFICE, Role.OFFICER, org_id=world[1])
    other = app.test_client()
    login(other, officer)
    assert "Change targets" not in other.get("/office/dashboard").get_data(as_text=True)
    other.post(
        "/office/dashboard/targets",
        data={"csrf_token": csrf_token(other, "/office/dashboard"), "credit_share": "1"},
    )
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(KpiTarget)) == 1


def test_banks_and_enterprises_cannot_open_the_dashboard(client, login_as):
    login_as(OrgKind.BANK)
    assert client.get("/office/dashboard").status_code == 403
    assert client.get("/office/dashboard/export.xlsx").status_code == 403


def test_the_loans_behind_a_figure_come_fifty_a_page_with_the_count_and_total_of_all(app, world):
    from decimal import Decimal

    from models import LoanProduct
    from tests.services.pool_support import make_loan

    with app.app_context():
        product = db.session.scalars(sa.select(LoanProduct)).first()
        enterprise_id = db.session.scalar(sa.text("SELECT enterprise_id FROM loan LIMIT 1"))
        for k in range(55):
            make_loan(enterprise_id, product, Decimal(10_000 + k))
        db.session.commit()
        db.session.remove()
    client = _office_client(app, world)
    page = client.get("/office/dashboard").get_data(as_text=True)
    count = int(_number(page, "loan-count"))
    first = client.get("/office/dashboard/loans").get_data(as_text=True)
    second = client.get("/office/dashboard/loans?page=2").get_data(as_text=True)
    assert int(_number(first, "drill-count")) == count == int(_number(second, "drill-count"))
    rows = re.findall(r'data-loan="(\d+)"', first) + re.findall(r'data-loan="(\d+)"', second)
    assert len(re.findall(r'data-loan="', first)) == 50 and len(set(rows)) == count
    # the total of all the loans, not of the page: the dashboard's own figure
    assert _number(first, "drill-total") == _number(second, "drill-total")
    assert _number(first, "drill-total") == _number(page, "loan-amount")
    assert 'rel="next"' in first and 'rel="prev"' in second
