"""The office adds banks and their users; only its admins may."""

import re

import sqlalchemy as sa

from app.extensions import db
from models import Organization, OrgKind, Role, User
from tests.conftest import csrf_token, login


def test_office_admin_adds_a_bank_with_its_admin(client, app, login_as):
    login_as(OrgKind.OFFICE)
    response = client.post(
        "/office/banks",
        data={
            "name": "测试银行福州分行",
            "admin_name": "王经理",
            "admin_email": "Admin@Bank.example.com",
            "csrf_token": csrf_token(client, "/office/banks"),
        },
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'data-testid="created"' in html
    password = re.search(r"<code>admin@bank.example.com</code> / <code>([^<]+)</code>", html).group(
        1
    )
    with app.app_context():
        bank = db.session.scalar(sa.select(Organization).where(Organization.kind == OrgKind.BANK))
        assert bank.name == "测试银行福州分行"
        user = db.session.scalar(sa.select(User).where(User.email == "admin@bank.example.com"))
        assert user.role is Role.ADMIN and user.organization_id == bank.id
    # the one-time password works
    fresh = app.test_client()
    response = fresh.post(
        "/auth/login",
        data={
            "email": "admin@bank.example.com",
            "password": password,
            "csrf_token": csrf_token(fresh),
        },
    )
    assert response.headers["Location"] == "/bank/"


def test_duplicate_bank_name_is_refused_next_to_the_field(client, app, factory, login_as):
    factory.organization(OrgKind.BANK, "重复银行")
    login_as(OrgKind.OFFICE)
    response = client.post(
        "/office/banks",
        data={
            "name": "重复银行",
            "admin_name": "x",
            "admin_email": "x@bank.example.com",
            "csrf_token": csrf_token(client, "/office/banks"),
        },
    )
    assert response.status_code == 422
    assert "already exists" in response.get_data(as_text=True)
    with app.app_context():
        assert (
            db.session.scalar(
                sa.select(sa.func.count())
                .select_from(User)
                .where(User.email == "x@bank.example.com")
            )
            == 0
        )


def test_office_viewer_cannot_add_banks(client, app, login_as):
    login_as(OrgKind.OFFICE, Role.VIEWER)
    assert client.get("/office/banks").status_code == 200
    response = client.post(
        "/office/banks",
        data={
            "name": "越权银行",
            "admin_name": "x",
            "admin_email": "x@bank.example.com",
            "csrf_token": csrf_token(client, "/office/banks"),
        },
    )
    assert response.status_code == 403
    with app.app_context():
        assert (
            db.session.scalar(sa.select(Organization).where(Organization.name == "越权银行"))
            is None
        )


def test_office_admin_disables_a_bank_user_and_their_session_ends(client, app, factory, login_as):
    bank_user = factory.user(OrgKind.BANK)
    bank_client = app.test_client()
    login(bank_client, bank_user)
    assert bank_client.get("/bank/").status_code == 200
    login_as(OrgKind.OFFICE)
    page = f"/office/organizations/{bank_user.organization_id}/users"
    response = client.post(
        f"/office/users/{bank_user.user_id}/active/0", data={"csrf_token": csrf_token(client, page)}
    )
    assert response.status_code == 302
    assert bank_client.get("/bank/").status_code == 302
    with app.app_context():
        assert db.session.get(User, bank_user.user_id).is_active is False


def test_office_overview_counts_enterprises_by_size(client, factory, login_as):
    factory.enterprise()
    factory.enterprise()
    factory.organization(OrgKind.BANK)
    login_as(OrgKind.OFFICE)
    html = client.get("/office/").get_data(as_text=True)
    assert re.search(r'data-testid="stat-enterprises">2<', html)
    assert re.search(r'data-testid="stat-banks">1<', html)
