"""Error pages by request kind, the health check, language switch and cookie flags."""

import sqlalchemy as sa

from tests.conftest import csrf_token


def test_unknown_route_is_a_404_page_not_a_stack_trace(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert "<html" in html and "404" in html
    assert "Traceback" not in html


def test_404_as_htmx_partial(client):
    response = client.get("/no/such/page", headers={"HX-Request": "true"})
    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert "<html" not in html and 'data-status="404"' in html


def test_404_as_json_problem(client):
    response = client.get("/api/v1/nothing")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.json["status"] == 404 and response.json["title"]


def test_500_rolls_back_and_shows_a_friendly_page(make_app, caplog):
    from app.extensions import db
    from models import Organization, OrgKind

    other = make_app(PROPAGATE_EXCEPTIONS=False)

    @other.get("/_boom_for_test")
    def _boom():
        db.session.add(Organization(kind=OrgKind.BANK, name="half-written"))
        db.session.flush()
        raise RuntimeError("boom")

    browser = other.test_client()
    browser.set_cookie("lang", "en")
    response = browser.get("/_boom_for_test")
    assert response.status_code == 500
    html = response.get_data(as_text=True)
    assert "nothing was saved" in html and "RuntimeError" not in html
    assert "unhandled error" in caplog.text
    with other.app_context():
        leftover = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(Organization)
            .where(Organization.name == "half-written")
        )
        assert leftover == 0


def test_healthz_reports_database_and_schema(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True
    assert body["database"]["schema_revision"]["up_to_date"] is True


def test_chinese_by_default_and_english_switch(app):
    client = app.test_client()
    html = client.get("/auth/login").get_data(as_text=True)
    assert "登录" in html and 'lang="zh-CN"' in html
    response = client.get("/language/en", query_string={"next": "/auth/login"})
    assert response.status_code == 302 and response.headers["Location"] == "/auth/login"
    html = client.get("/auth/login").get_data(as_text=True)
    assert "Log in" in html and 'lang="en"' in html
    client.get("/language/zh")
    assert "登录" in client.get("/auth/login").get_data(as_text=True)


def test_language_switch_ignores_foreign_next(client):
    response = client.get("/language/en", query_string={"next": "https://evil.example/"})
    assert response.headers["Location"] == "/"


def test_session_cookie_is_httponly_and_samesite(client, factory):
    from models import OrgKind

    account = factory.user(OrgKind.BANK)
    response = client.post(
        "/auth/login",
        data={
            "email": account.email,
            "password": account.password,
            "csrf_token": csrf_token(client),
        },
    )
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if "session" in h)
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
