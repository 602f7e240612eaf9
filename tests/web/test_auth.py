"""Registration, login, logout, throttling, role separation and CSRF, through HTTP."""

import datetime as dt
import re

import pytest
import sqlalchemy as sa

from app.extensions import db
from models import Enterprise, Organization, OrgKind, Role, User, UserSession
from tests.conftest import TEST_PASSWORD, csrf_token, login

VALID = {
    "uscc": "91350100m000100y43",
    "name": "福州闽江制造有限公司",
    "legal_representative": "林建华",
    "founded_on": "2015-03-02",
    "region_code": "350102",
    "industry_code": "c13",
    "employees": "35",
    "annual_revenue_wan": "1200.50",
    "total_assets_wan": "",
    "user_name": "林经办",
    "email": "Owner@Example.com",
    "password": TEST_PASSWORD,
    "confirm": TEST_PASSWORD,
    "accept_terms": "y",
}


def register(client, **overrides):
    data = {**VALID, **overrides, "csrf_token": csrf_token(client, "/auth/register")}
    return client.post("/auth/register", data=data)


def field_error(html: str, field: str) -> str:
    match = re.search(rf'data-field="{field}">([^<]*)<', html)
    return match.group(1) if match else ""


def test_registration_creates_enterprise_user_and_logs_in(client, app):
    response = register(client)
    assert response.status_code == 302
    assert response.headers["Location"] == "/enterprise/"
    page = client.get("/enterprise/").get_data(as_text=True)
    assert "福州闽江制造有限公司" in page
    assert "91350100M000100Y43" in page
    with app.app_context():
        enterprise = db.session.scalar(sa.select(Enterprise))
        assert enterprise.uscc == "91350100M000100Y43"
        assert enterprise.industry_code == "C13"
        assert str(enterprise.annual_revenue) == "12005000.00"
        assert enterprise.size_class.value == "small"  # 35 people, 1200.5万 in manufacturing
        user = db.session.scalar(sa.select(User))
        assert user.email == "owner@example.com"
        assert user.role is Role.ADMIN
        assert user.organization.kind is OrgKind.ENTERPRISE
        assert user.password_hash.startswith("$argon2id$")


def test_duplicate_uscc_says_already_registered_and_writes_nothing(client, app, factory):
    factory.enterprise(uscc="91350100M000100Y43")
    response = register(client, email="second@example.com")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "already registered" in field_error(html, "uscc")
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Enterprise)) == 1
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Organization)) == 1
        assert (
            db.session.scalar(
                sa.select(sa.func.count())
                .select_from(User)
                .where(User.email == "second@example.com")
            )
            == 0
        )


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("uscc", "91350100M000100Y44", "check digit"),
        ("uscc", "91350100M000100", "18 characters"),
        ("uscc", "91350100M000100YO3", "I, O, S, V and Z"),
        ("region_code", "99", "6 digits"),
        ("industry_code", "C99", "does not belong"),
        ("employees", "-3", "between 0"),
        ("annual_revenue_wan", "abc", "Not a valid decimal"),
        ("founded_on", "2999-01-01", "future"),
        ("password", "short", "at least 12"),
        ("confirm", "something else!!", "differ"),
        ("email", "not-an-email", "Invalid email"),
        ("accept_terms", "", "confirm"),
    ],
)
def test_bad_registration_input_is_reported_next_to_the_field(client, app, field, value, message):
    response = register(client, **{field: value})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert message in field_error(html, field)
    assert "Nothing has been saved yet" in html or "尚未保存" in html
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Enterprise)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0


def test_construction_company_must_give_total_assets(client):
    response = register(client, industry_code="E47")
    assert response.status_code == 422
    assert "Total assets are needed" in field_error(
        response.get_data(as_text=True), "total_assets_wan"
    )
    assert register(client, industry_code="E47", total_assets_wan="800").status_code == 302


def test_htmx_uscc_check_while_typing(client, factory):
    factory.enterprise(uscc="91110000600037341L")
    token = csrf_token(client, "/auth/register")
    headers = {"HX-Request": "true", "X-CSRFToken": token}
    ok = client.post(
        "/auth/register/check-uscc", data={"uscc": "91350100m000100y43"}, headers=headers
    )
    assert ok.status_code == 200 and "field-ok" in ok.get_data(as_text=True)
    bad = client.post(
        "/auth/register/check-uscc", data={"uscc": "91350100M000100Y44"}, headers=headers
    )
    assert "should be 3" in bad.get_data(as_text=True)
    taken = client.post(
        "/auth/register/check-uscc", data={"uscc": "91110000600037341L"}, headers=headers
    )
    assert "already registered" in taken.get_data(as_text=True)


def test_htmx_post_without_csrf_header_is_refused(client):
    client.get("/auth/register")
    response = client.post(
        "/auth/register/check-uscc",
        data={"uscc": "91350100M000100Y43"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)


def test_form_post_without_csrf_token_is_400_and_logs_nobody_in(client, factory):
    account = factory.user(OrgKind.BANK)
    client.get("/auth/login")
    response = client.post(
        "/auth/login", data={"email": account.email, "password": account.password}
    )
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    assert client.get("/bank/").status_code == 302  # still anonymous: sent to login


def test_login_success_lands_on_role_page(client, factory):
    account = factory.user(OrgKind.BANK)
    response = login(client, account)
    assert response.headers["Location"] == "/bank/"
    assert client.get("/bank/").status_code == 200


def test_wrong_password_and_unknown_email_give_the_same_answer(client, factory):
    account = factory.user(OrgKind.BANK)
    token = csrf_token(client)
    wrong = client.post(
        "/auth/login",
        data={"email": account.email, "password": "nope nope nope", "csrf_token": token},
    )
    unknown = client.post(
        "/auth/login",
        data={"email": "ghost@example.com", "password": "nope nope nope", "csrf_token": token},
    )
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong e-mail address or password" in wrong.get_data(as_text=True)
    assert "Wrong e-mail address or password" in unknown.get_data(as_text=True)
    assert client.get("/bank/").status_code == 302


def test_account_locks_after_repeated_failures_even_for_the_right_password(client, app, factory):
    account = factory.user(OrgKind.OFFICE)
    token = csrf_token(client)
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        client.post(
            "/auth/login",
            data={"email": account.email, "password": "wrong password!", "csrf_token": token},
        )
    response = client.post(
        "/auth/login",
        data={"email": account.email, "password": account.password, "csrf_token": token},
    )
    assert response.status_code == 401
    assert "locked" in response.get_data(as_text=True)
    with app.app_context():
        user = db.session.get(User, account.user_id)
        assert user.locked_until > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
        # once the lock has passed, the right password works again
        user.locked_until = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        db.session.commit()
    assert login(client, account).headers["Location"] == "/office/"


def test_login_rate_limit_per_address(client, app, factory):
    token = csrf_token(client)
    limit = int(app.config["LOGIN_RATE_LIMIT"].split()[0])
    statuses = [
        client.post(
            "/auth/login",
            data={"email": f"x{i}@example.com", "password": "wrong password!", "csrf_token": token},
        ).status_code
        for i in range(limit + 1)
    ]
    assert statuses[:limit] == [401] * limit
    assert statuses[-1] == 429


def test_logout_ends_the_session_on_the_server(client, app, factory):
    account = factory.user(OrgKind.BANK)
    login(client, account)
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value
    response = client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/bank/")})
    assert response.status_code == 302
    assert client.get("/bank/").status_code == 302
    # Replaying the cookie captured before logout does not bring the session back.
    replay = app.test_client()
    replay.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie)
    assert replay.get("/bank/").status_code == 302
    with app.app_context():
        session_row = db.session.scalar(sa.select(UserSession))
        assert session_row.revoked_at is not None


def test_disabling_a_user_ends_their_sessions(client, app, factory):
    account = factory.user(OrgKind.BANK)
    login(client, account)
    assert client.get("/bank/").status_code == 200
    result = app.test_cli_runner().invoke(args=["accounts", "disable-user", account.email])
    assert result.exit_code == 0, result.output
    assert client.get("/bank/").status_code == 302


def test_session_id_is_renewed_at_login(client, app, factory):
    account = factory.user(OrgKind.BANK)
    client.get("/auth/login")
    before = client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value
    login(client, account)
    after = client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value
    assert before != after


@pytest.mark.parametrize(
    "kind,allowed",
    [
        (OrgKind.ENTERPRISE, "/enterprise/"),
        (OrgKind.BANK, "/bank/"),
        (OrgKind.OFFICE, "/office/"),
    ],
)
def test_each_role_sees_only_its_own_pages(client, login_as, kind, allowed):
    login_as(kind)
    for path in ("/enterprise/", "/bank/", "/office/", "/office/banks"):
        expected = 200 if path.startswith(allowed) else 403
        assert client.get(path).status_code == expected, path


def test_anonymous_visitor_is_sent_to_login_with_next(client):
    response = client.get("/bank/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login?next=")


@pytest.mark.parametrize(
    "target,expected",
    [
        ("/bank/", "/bank/"),
        ("https://evil.example/", "/bank/"),
        ("//evil.example/", "/bank/"),
        ("/\\evil.example", "/bank/"),
        ("javascript:alert(1)", "/bank/"),
    ],
)
def test_next_redirect_only_to_local_paths(client, factory, target, expected):
    account = factory.user(OrgKind.BANK)
    response = client.post(
        "/auth/login",
        query_string={"next": target},
        data={
            "email": account.email,
            "password": account.password,
            "csrf_token": csrf_token(client),
        },
    )
    assert response.headers["Location"] == expected


def test_change_password_requires_current_and_ends_other_sessions(client, app, factory):
    account = factory.user(OrgKind.OFFICE)
    other = app.test_client()
    login(other, account)
    login(client, account)
    token = csrf_token(client, "/auth/password")
    new = "a brand new passphrase"
    bad = client.post(
        "/auth/password",
        data={"current_password": "wrong", "password": new, "confirm": new, "csrf_token": token},
    )
    assert "not correct" in bad.get_data(as_text=True)
    ok = client.post(
        "/auth/password",
        data={
            "current_password": account.password,
            "password": new,
            "confirm": new,
            "csrf_token": token,
        },
    )
    assert ok.status_code == 302
    assert client.get("/office/").status_code == 200  # this session stays
    assert other.get("/office/").status_code == 302  # the other one ended


def test_idle_session_ends_and_says_why(client, app, factory):
    account = factory.user(OrgKind.BANK)
    login(client, account)
    assert client.get("/bank/").status_code == 200
    with client.session_transaction() as session:
        session["seen"] -= app.config["SESSION_IDLE_MINUTES"] * 60 + 1
    response = client.get("/bank/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/auth/login")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "period of inactivity" in page


def test_session_past_its_absolute_lifetime_is_refused(client, app, factory):
    account = factory.user(OrgKind.BANK)
    login(client, account)
    with app.app_context():
        row = db.session.scalar(sa.select(UserSession))
        row.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        db.session.commit()
    assert client.get("/bank/").status_code == 302
